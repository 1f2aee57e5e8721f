"""The ``mobexport`` command.

``mobexport --model NAME --target TARGET`` exports (no subcommand: it is the
main thing users do). Everything else is a subcommand: ``list``, ``inspect``.
Any :class:`MobexportError` becomes one line on stderr and exit status 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Callable, Sequence

from rich.console import Console
from rich.markup import escape

from mobexport import __version__, signals
from mobexport.config import DEFAULT_OUT_DIR, ExportConfig
from mobexport.errors import MobexportError

err_console = Console(stderr=True)


def _export_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mobexport",
        description="Export a zoo model to a mobile target, with measured parity and a manifest.",
        epilog="Subcommands: 'mobexport list [PATTERN]', 'mobexport inspect PATH'. "
        "Run 'mobexport SUBCOMMAND --help' for theirs.",
    )
    p.add_argument("--model", required=True, help="zoo model name (see 'mobexport list')")
    p.add_argument("--target", required=True, help="export target: onnx, executorch, coreml, tensorrt")
    p.add_argument("--resolution", type=int, help="input height = width (default: the model's)")
    p.add_argument("--checkpoint", type=Path, help="trained weights (.pth/.pt/.safetensors) in the reference key format")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="allow checkpoints that pickle Python objects besides tensors (only for files you trust)")
    p.add_argument("--num-classes", type=int, help="classifier size (default: the model's, 1000)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT_DIR,
                   help=f"output root; the artifact goes to OUT/MODEL/TARGET/ (default: ./{DEFAULT_OUT_DIR})")
    shape = p.add_mutually_exclusive_group()
    shape.add_argument("--dynamic", dest="dynamic", action="store_true", default=None,
                       help="dynamic height/width over the model's resolution range")
    shape.add_argument("--static", dest="dynamic", action="store_false", help="fixed input size")
    p.add_argument("--tolerance", type=float, help="override the max-abs-error parity bound")
    p.add_argument("--parity-samples", type=int, default=8, help="inputs in the parity batch (default: 8)")

    compiler = p.add_argument_group("compiler")
    compiler.add_argument("--passes", default="default",
                          help="graph rewrites: default, none, or a comma-separated list of pass ids")
    compiler.add_argument("--explain", action="store_true", help="print the pass report (also in the manifest)")
    compiler.add_argument("--verify-passes", action="store_true",
                          help="check the graph's outputs before and after every pass; name a pass that changes them")
    compiler.add_argument("--quantize", default="none", help="none, fp16, int8 or int8-weights (per target)")
    compiler.add_argument("--calib", type=Path, help="directory of calibration images (jpg/png, recursive)")
    compiler.add_argument("--calib-samples", type=int, default=128, help="calibration images to use (default: 128)")

    targets = p.add_argument_group("target options")
    targets.add_argument("--backend", choices=["xnnpack", "portable"], default="xnnpack",
                         help="executorch: delegate to XNNPACK (default) or portable kernels only")
    targets.add_argument("--precision", choices=["fp16", "fp32"],
                         help="coreml / tensorrt compute precision (default: fp16)")
    targets.add_argument("--deployment-target", default="iOS16",
                         help="coreml: minimum deployment target, e.g. iOS16, iOS17, macOS13 (default: iOS16)")
    targets.add_argument("--image-input", action="store_true",
                         help="coreml: take an image input with the model's normalization baked in")
    targets.add_argument("--class-labels", type=Path, help="coreml: text file of class labels, one per line")
    targets.add_argument("--build-engine", choices=["yes", "no"], default="yes",
                         help="tensorrt: 'no' writes the TensorRT-ready ONNX and the trtexec command instead")
    targets.add_argument("--int8-activations", choices=["int8", "uint8"], default="int8",
                         help="onnx --quantize int8: activation type; uint8 (U8S8) is ONNX Runtime's fast form on "
                              "x86 CPUs without VNNI (default: int8, S8S8)")
    _add_common(p)
    return p


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", help="show tracebacks and verbose logs")
    p.add_argument("--version", action="version", version=f"mobexport {__version__}")


def _cmd_export(argv: Sequence[str]) -> int:
    args = _export_parser().parse_args(argv)
    _setup_logging(args.debug)
    from mobexport.export.pipeline import EXPORT_STEPS, export_model
    from mobexport.report import print_export_summary, step_progress

    config = ExportConfig(
        model=args.model,
        target=args.target,
        resolution=args.resolution,
        checkpoint=args.checkpoint,
        trust_checkpoint=args.trust_checkpoint,
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
        target_options={
            "backend": args.backend,
            "precision": args.precision,
            "deployment_target": args.deployment_target,
            "image_input": args.image_input,
            "class_labels": args.class_labels,
            "build_engine": args.build_engine == "yes",
            "int8_activations": args.int8_activations,
        },
        command=["mobexport", *argv],
    )
    if config.parity_samples < 1:
        raise MobexportError("--parity-samples must be at least 1", "e.g. --parity-samples 8")
    with step_progress(err_console, f"{config.model} -> {config.target}", len(EXPORT_STEPS)) as advance:
        artifact = export_model(config, on_step=advance)
    print_export_summary(Console(), artifact)
    if config.explain:
        from mobexport.report import print_pass_report

        print_pass_report(Console(), artifact.manifest.passes)
    return 0


def _cmd_list(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="mobexport list", description="List the model zoo.")
    p.add_argument("pattern", nargs="?", help="glob over model names, e.g. 'cmt*'")
    p.add_argument("--measure", action="store_true", help="measure MACs by tracing each model (slow)")
    _add_common(p)
    args = p.parse_args(argv)
    _setup_logging(args.debug)
    from mobexport.report import print_model_list

    return print_model_list(Console(), args.pattern, measure=args.measure)


def _cmd_inspect(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="mobexport inspect", description="Print an artifact's manifest and re-verify its hash.")
    p.add_argument("path", type=Path, help="artifact directory, its manifest.json or its main file")
    p.add_argument("--json", action="store_true", help="print the raw manifest JSON")
    _add_common(p)
    args = p.parse_args(argv)
    _setup_logging(args.debug)
    from mobexport.report import print_manifest

    return print_manifest(Console(), args.path, raw=args.json)


def _lazy(path: str) -> Callable[[Sequence[str]], int]:
    """A subcommand whose module is imported only when it runs ("module:function")."""

    def run(argv: Sequence[str]) -> int:
        import importlib

        module, function = path.split(":")
        return getattr(importlib.import_module(module), function)(argv)

    return run


SUBCOMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "list": _cmd_list,
    "inspect": _cmd_inspect,
    "devices": _lazy("mobexport.devices.cli:main"),
    "bench": _lazy("mobexport.benchmarks.bench_cli:main"),
    "regress": _lazy("mobexport.benchmarks.regress_cli:main"),
    "train-fixture": _lazy("mobexport.benchmarks.fixture_cli:main"),
}


def _setup_logging(debug: bool) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_time=False, show_path=debug)],
        force=True,
    )
    # Third-party loggers are chatty at WARNING; keep ours.
    if not debug:
        for noisy in ("torch", "onnxscript", "executorch", "torchao", "coremltools", "matplotlib"):
            logging.getLogger(noisy).setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    signals.install()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    command = SUBCOMMANDS.get(argv[0]) if argv else None
    try:
        if command is not None:
            return command(argv[1:])
        return _cmd_export(argv)
    except MobexportError as exc:
        if debug:
            raise
        err_console.print(f"[bold red]error:[/] {escape(exc.one_line())}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]: nothing half-written was left behind")
        return 130


if __name__ == "__main__":
    sys.exit(main())
