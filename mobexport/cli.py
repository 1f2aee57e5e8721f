"""The ``mobexport`` command: one entry point, one subcommand per job.

``mobexport --model NAME --target TARGET`` exports: ``export`` is the default
command, so ``mobexport export --model ...`` is the same. Every other command
is named first (``mobexport list``, ``mobexport bench`` ...); :data:`COMMANDS`
is the one table of them, which ``mobexport --help`` prints. A command's module
is imported only when it runs, so ``--help`` and option errors answer at once
(no torch import).

:func:`main` sets up logging once (:mod:`mobexport.logs`) and turns any
:class:`MobexportError` into one line on stderr and the error's exit status
(see :data:`mobexport.errors.EXIT_STATUSES`); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from rich.markup import escape

from mobexport import __version__, logs, signals
from mobexport.config import DEFAULT_OUT_DIR, ExportConfig
from mobexport.consoles import stderr_console, stdout_console
from mobexport.errors import EXIT_INTERRUPTED, EXIT_STATUSES, EXIT_USAGE, MobexportError
from mobexport.options import (
    ArgumentParser,
    add_verbosity_options,
    channel_triple,
    existing_dir,
    existing_file,
    finite_nonneg_float,
    input_shape,
    json_object,
    positive_int,
    printable_line,
    resolution,
    resolution_range,
    writable_dir,
)

MAIN_EXAMPLE = "mobexport --model mobile_former_294m --target coreml"


@dataclass(frozen=True)
class Command:
    purpose: str
    example: str
    run: Callable[[Sequence[str]], int]


def _lazy(path: str) -> Callable[[Sequence[str]], int]:
    """A command whose module is imported only when it runs ("module:function")."""

    def run(argv: Sequence[str]) -> int:
        module, function = path.split(":")
        return getattr(importlib.import_module(module), function)(list(argv))

    return run


def exit_status_text() -> str:
    return "exit status:\n" + "\n".join(f"  {code:<4} {meaning}" for code, meaning in EXIT_STATUSES.items())


# ----------------------------------------------------------------------------- export

def _pass_ids() -> list[str]:
    """Pass ids from the registry's explicit list, without importing torch."""
    from mobexport.export.passes.registry import pass_ids

    return pass_ids()


def export_parser() -> argparse.ArgumentParser:
    from mobexport.export.quantize.support import MODES  # plain tables: no torch
    from mobexport.export.targets import option_classes, target_names
    from mobexport.export.targets.options import add_arguments

    p = ArgumentParser(
        prog="mobexport export",
        description="Export a model (a zoo name, your own module or a .pt2) to a mobile target, with measured parity and a manifest. "
                    "'export' is the default command: 'mobexport --model X --target Y' is the same.",
        epilog=f"example: {MAIN_EXAMPLE}\n\n{exit_status_text()}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True,
                   help="zoo model name (see 'mobexport list'), package.module:factory, path/to/file.py:factory, "
                        "or a .pt2 file written by torch.export.save (docs/your_own_model.md)")
    p.add_argument("--target", required=True, help=f"export target: {', '.join(target_names())}")
    p.add_argument("--resolution", type=resolution,
                   help="input size: 224 (square) or HEIGHTxWIDTH, e.g. 256x320 (default: the model's)")
    user = p.add_argument_group("your own model (docs/your_own_model.md)")
    user.add_argument("--input-shape", type=input_shape, metavar="1x3xHxW",
                      help="the input a model outside the zoo takes, e.g. 1x3x256x320 (or give --resolution)")
    user.add_argument("--resolution-range", type=resolution_range, metavar="LOW..HIGH/STEP",
                      help="dynamic height and width over this range, e.g. 128..512/32")
    user.add_argument("--model-kwargs", type=json_object, metavar="JSON",
                      help="keyword arguments of the factory, e.g. '{\"num_classes\": 10}'")
    user.add_argument("--mean", type=channel_triple("--mean"), metavar="R,G,B",
                      help="normalization mean of calibration images (default: the model's, else ImageNet's)")
    user.add_argument("--std", type=channel_triple("--std"), metavar="R,G,B",
                      help="normalization std of calibration images (default: the model's, else ImageNet's)")
    p.add_argument("--checkpoint", type=existing_file,
                   help="trained weights (.pth/.pt/.safetensors) in the reference key format")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="allow checkpoints that pickle Python objects besides tensors (only for files you trust)")
    p.add_argument("--num-classes", type=positive_int, help="classifier size (default: the model's, 1000)")
    p.add_argument("--out", type=writable_dir, default=DEFAULT_OUT_DIR,
                   help=f"output root; the artifact goes to OUT/MODEL/TARGET/ (default: ./{DEFAULT_OUT_DIR})")
    shape = p.add_mutually_exclusive_group()
    shape.add_argument("--dynamic", dest="dynamic", action="store_true", default=None,
                       help="dynamic height/width over the model's resolution range")
    shape.add_argument("--static", dest="dynamic", action="store_false", help="fixed input size")
    p.add_argument("--force", action="store_true",
                   help="replace another variant (resolution, quantization, passes...) already at OUT/MODEL/TARGET")
    p.add_argument("--tolerance", type=finite_nonneg_float, help="override the max-abs-error parity bound (>= 0)")
    p.add_argument("--parity-samples", type=positive_int, default=8, help="inputs in the parity batch (default: 8)")
    p.add_argument("--json", action="store_true",
                   help="print the manifest JSON on stdout instead of the summary (progress stays on stderr)")

    compiler = p.add_argument_group("compiler")
    compiler.add_argument("--passes", default="default", metavar="PASSES",
                          help="graph rewrites: default, none, or a comma-separated list of "
                               f"{', '.join(_pass_ids())} (see 'mobexport passes'; default: default)")
    compiler.add_argument("--explain", action="store_true", help="print the pass report (also in the manifest)")
    compiler.add_argument("--verify-passes", action="store_true",
                          help="check the graph's outputs before and after every pass; name a pass that changes them")
    compiler.add_argument("--quantize", default="none", choices=MODES,
                          help="quantization for the target's runtime (which target does which: "
                               "docs/quantization.md; default: none)")
    compiler.add_argument("--calib", type=existing_dir, help="directory of calibration images (recursive)")
    compiler.add_argument("--calib-samples", type=positive_int, default=128,
                          help="calibration images to use (default: 128)")

    add_arguments(p.add_argument_group("target options"), option_classes())
    add_verbosity_options(p)
    p.add_argument("--version", action="version", version=f"mobexport {__version__}")
    return p


def _cmd_export(argv: Sequence[str]) -> int:
    from mobexport.export.targets import option_classes
    from mobexport.export.targets.options import options_from_args

    args = export_parser().parse_args(list(argv))
    # Every option is checked (here and in ExportConfig) before torch is imported below.
    config = ExportConfig(
        model=args.model,
        target=args.target,
        resolution=args.resolution,
        checkpoint=args.checkpoint,
        trust_checkpoint=args.trust_checkpoint,
        force=args.force,
        num_classes=args.num_classes,
        out_dir=args.out,
        dynamic=args.dynamic,
        tolerance=args.tolerance,
        parity_samples=args.parity_samples,
        passes=args.passes,
        explain=args.explain,
        verify_passes=args.verify_passes,
        quantize=args.quantize,
        calib_dir=args.calib,
        calib_samples=args.calib_samples,
        target_options=options_from_args(args, option_classes()),
        command=["mobexport", *argv],
        input_shape=args.input_shape,
        resolution_range=args.resolution_range,
        model_kwargs=args.model_kwargs,
        mean=args.mean,
        std=args.std,
    )
    from mobexport.export.pipeline import EXPORT_STEPS, export_model
    from mobexport.report import print_export_summary, step_progress

    with step_progress(stderr_console(), f"{config.model_label} -> {config.target}", len(EXPORT_STEPS)) as advance:
        artifact = export_model(config, on_step=advance)
    if args.json:
        sys.stdout.write(artifact.manifest.to_json().rstrip("\n") + "\n")
        return 0
    console = stdout_console()
    print_export_summary(console, artifact)
    if config.explain:
        from mobexport.export.targets import get_target
        from mobexport.report import print_pass_report

        left_out = get_target(config.target).slower_passes if config.passes.strip() == "default" else ()
        print_pass_report(console, artifact.manifest.passes, config.target, left_out)
    return 0


# ----------------------------------------------------------------------------- list, inspect, passes

def _cmd_list(argv: Sequence[str]) -> int:
    p = ArgumentParser(prog="mobexport list",
                       description="List the model zoo, and what each target can do on this host.",
                       epilog="examples: mobexport list mobile_former | mobexport list 'cmt_*' | mobexport list --json")
    p.add_argument("pattern", nargs="?",
                   help="model name, prefix or substring (e.g. 'cmt', 'former'), or a glob (e.g. 'cmt_*')")
    p.add_argument("--measure", action="store_true", help="measure MACs by tracing each model (slow)")
    p.add_argument("--json", action="store_true", help="print JSON (models and target status) instead of a table")
    add_verbosity_options(p)
    args = p.parse_args(list(argv))
    from mobexport.report import print_model_list

    return print_model_list(stdout_console(), args.pattern, measure=args.measure, as_json=args.json)


def _cmd_inspect(argv: Sequence[str]) -> int:
    p = ArgumentParser(prog="mobexport inspect", description="Print an artifact's manifest and re-verify its hash.",
                       epilog="example: mobexport inspect mobexport-out/mobile_former_294m/coreml")
    p.add_argument("path", type=Path, help="artifact directory, its manifest.json or its main file")
    p.add_argument("--json", action="store_true", help="print the raw manifest JSON")
    add_verbosity_options(p)
    args = p.parse_args(list(argv))
    from mobexport.report import print_manifest

    return print_manifest(stdout_console(), args.path, raw=args.json)


def _cmd_passes(argv: Sequence[str]) -> int:
    p = ArgumentParser(prog="mobexport passes",
                       description="List the graph passes '--passes' can name, with what each does.",
                       epilog="example: mobexport --model mobile_former_294m --target onnx "
                              "--passes fold_batchnorm,fold_dynamic_relu --explain")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_verbosity_options(p)
    args = p.parse_args(list(argv))
    from mobexport.report import print_passes

    return print_passes(stdout_console(), as_json=args.json)


COMMANDS: dict[str, Command] = {
    "export": Command("export a model (zoo name, your own module, .pt2) to a mobile target, with parity and a "
                      "manifest (the default)",
                      MAIN_EXAMPLE, _cmd_export),
    "list": Command("list the model zoo and what each target can do here",
                    "mobexport list mobile_former", _cmd_list),
    "inspect": Command("print an artifact's manifest and re-verify its hash",
                       "mobexport inspect mobexport-out/mobile_former_294m/coreml", _cmd_inspect),
    "passes": Command("list the graph passes --passes can name",
                      "mobexport passes", _cmd_passes),
    "devices": Command("list the benchmark devices available here, and why the others are not",
                       "mobexport devices", _lazy("mobexport.devices_cli:main")),
    "bench": Command("resolution sweeps on a device: latency curves, summary and plots",
                     "mobexport bench --suite smoke --out bench-out", _lazy("mobexport.benchmarks.sweep.cli:main")),
    "cluster": Command("join this host to a Ray cluster with its devices as resources (bench --cluster)",
                       "mobexport cluster node --address HEAD:6379", _lazy("mobexport.benchmarks.cluster.cli:main")),
    "regress": Command("check results against a baseline for regressions (instruction counts, latency, paired runs)",
                       "mobexport regress --baseline base.json --results bench-out/results.jsonl",
                       _lazy("mobexport.benchmarks.regress.cli:main")),
    "profile": Command("time per operator type of several models on one runtime, side by side",
                       "mobexport profile --models mobile_former_294m,mobilenet_v3_large_100 --resolution 224",
                       _lazy("mobexport.benchmarks.profile.cli:main")),
    "train-fixture": Command("train the small models that quantization accuracy is measured on",
                             "mobexport train-fixture", _lazy("mobexport.benchmarks.fixtures.cli:main")),
}


# The scripts behind docs/measured (and the regression check's validation): runnable, listed in the help,
# not part of the command set. Package -> its scripts, each run as 'python -m PACKAGE.SCRIPT'.
RESEARCH_SCRIPTS = {
    "mobexport.benchmarks.studies": ("export_table", "passes_benchmark", "pass_counts", "dynamic_relu_forms",
                                     "quant_latency"),
    "mobexport.benchmarks.regress": ("validation", "compiler_validation", "slowdown_injection"),
}


def main_parser() -> argparse.ArgumentParser:
    """``mobexport --help``: every command with its purpose and an example, global options, exit statuses."""
    width = max(map(len, COMMANDS)) + 2
    lines = ["commands (COMMAND defaults to export; 'mobexport COMMAND --help' for its options):"]
    for name, command in COMMANDS.items():
        lines.append(f"  {name:<{width}}{command.purpose}")
        lines.append(f"  {'':<{width}}  e.g. {command.example}")
    p = ArgumentParser(
        prog="mobexport",
        usage="mobexport [COMMAND] [OPTIONS]",
        description="Export vision models to mobile targets, rewrite and quantize them, and benchmark them.\n\n"
                    + "\n".join(lines),
        epilog="measurement scripts behind docs/measured (not commands; each has --help):\n"
               + "".join(f"  python -m {package}.{{{','.join(scripts)}}}\n" for package, scripts in RESEARCH_SCRIPTS.items())
               + "\n" + exit_status_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"mobexport {__version__}")
    add_verbosity_options(p)
    return p


def _setup_logging(debug: bool) -> None:
    """Kept for commands entered directly (their own ``main``): set up once, never lower the verbosity."""
    logs.ensure_setup(debug)


def _is_verbosity_flag(arg: str) -> bool:
    return arg in ("--debug", "-q", "--quiet", "--verbose") or (len(arg) > 1 and set(arg[1:]) == {"v"}
                                                                 and arg[0] == "-")


def _dispatch(argv: list[str]) -> int:
    # 'mobexport -v bench ...': verbosity flags may come before the command; every command takes them.
    leading = 0
    while leading < len(argv) and _is_verbosity_flag(argv[leading]):
        leading += 1
    if 0 < leading < len(argv) and argv[leading] in COMMANDS:
        argv = [argv[leading], *argv[:leading], *argv[leading + 1:]]
    if not argv or argv[0] in ("-h", "--help", "help"):
        if len(argv) > 1 and argv[0] == "help" and argv[1] in COMMANDS:  # 'mobexport help bench'
            return COMMANDS[argv[1]].run(["--help"])
        main_parser().print_help()
        return 0 if argv else EXIT_USAGE
    if argv[0] == "--version":
        print(f"mobexport {__version__}")
        return 0
    if argv[0] in COMMANDS:
        return COMMANDS[argv[0]].run(argv[1:])
    if not argv[0].startswith("-"):
        import difflib

        close = difflib.get_close_matches(argv[0], list(COMMANDS), n=1)
        hint = f"did you mean '{close[0]}'?" if close else "see 'mobexport --help' for the commands"
        print(f"error: unknown command {printable_line(repr(argv[0]))} ({hint})", file=sys.stderr)
        return EXIT_USAGE
    return COMMANDS["export"].run(argv)


def main(argv: Sequence[str] | None = None) -> int:
    signals.install()
    argv = list(sys.argv[1:] if argv is None else argv)
    logs.setup(logs.verbosity_from_argv(argv))
    try:
        return _dispatch(argv)
    except MobexportError as exc:
        if "--debug" in argv:
            raise
        stderr_console().print(f"[bold red]error:[/] {escape(printable_line(exc.one_line()))}", highlight=False,
                               soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP through signals.install (exit 128 + signal)
        stderr_console().print("[bold red]interrupted[/]: nothing half-written was left behind")
        return getattr(exc, "exit_code", EXIT_INTERRUPTED)
    except SystemExit as exc:  # argparse's --help and one-line usage errors: main returns, never exits
        if exc.code is None:
            return 0
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
