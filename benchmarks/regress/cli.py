"""``mobexport regress``: compare a results file with a baseline, make a baseline, or plot trends.

    mobexport regress --baseline FILE --results FILE     compare (exit 1 on regression)
    mobexport regress --update-baseline --results FILE --baseline FILE
    mobexport regress --history DIR                      trends across runs
    mobexport regress --metric instructions ...          the same on callgrind instruction counts
    mobexport regress --paired BASE_OUT --results FILE   time both builds side by side now

Exit status: 0 no regression (or a baseline/trend written), 1 regression,
2 bad input (missing or malformed file, no overlapping cases, reference model
missing in relative mode) via :class:`~mobexport.errors.MobexportError`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Sequence

from rich.console import Console

from mobexport import logs
from mobexport.errors import BenchmarkError
from mobexport.options import ArgumentParser, add_verbosity_options, positive_int

from .baseline import baseline_from_results, provenance_of, read_baseline
from mobexport.benchmarks.results.curves import points_from_records
from mobexport.benchmarks.results.records import read_records
from mobexport.safe_files import write_text_durably
from .verdict import DEFAULT_MIN_EFFECT, DEFAULT_REFERENCE, MODES, ON_OTHER_DEVICE, RegressionSettings, compare
from mobexport.benchmarks.results.stats import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED
from .instruction_baseline import refuse_other_metric

log = logging.getLogger(__name__)


def _fraction(text: str) -> float:
    """'0.1', '10%' -> 0.1; a fraction in [0, 1)."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a fraction such as 0.1 or 10%") from None
    if not 0 <= value < 1:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text!r} is not a fraction between 0 and 1 (such as 0.1 or 10%)")
    return value


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="mobexport regress",
        description="Check benchmark results against a baseline for latency regressions "
                    "(exit 1 on regression, 2 on bad input), make a baseline, or plot trends.",
        epilog="example: mobexport regress --baseline base.json --results bench-out/results.jsonl\n"
               "See docs/regression.md for the statistics and CI usage.",
    )
    p.add_argument("--results", type=Path, nargs="+", metavar="FILE",
                   help="results.jsonl written by 'mobexport bench'; with --update-baseline, one or more runs "
                        "of the same sweep (several runs let the check see run-to-run variation)")
    p.add_argument("--baseline", type=Path, help="baseline JSON (read, or written with --update-baseline)")
    p.add_argument("--update-baseline", action="store_true", help="write --baseline from --results instead of comparing")
    p.add_argument("--history", type=Path, metavar="DIR", help="plot trends of every *.jsonl under DIR instead")
    p.add_argument("--metric", choices=("latency", "instructions"), default="latency",
                   help="latency: wall time of 'mobexport bench' (default); instructions: callgrind counts of "
                        "'mobexport bench --metric instructions' (deterministic; see docs/regression.md)")
    p.add_argument("--paired", type=Path, metavar="BASE_OUT",
                   help="time the baseline build's artifacts (the 'mobexport bench --out' folder, or its "
                        "results.jsonl) and --results' side by side now, interleaved, instead of against stored "
                        "numbers (see docs/regression.md)")
    p.add_argument("--rounds", type=positive_int, default=5, help="--paired: interleaved rounds (default: 5)")
    p.add_argument("--mode", choices=MODES, default="relative",
                   help="relative: normalise by the reference model of the same run (default); "
                        "absolute: raw latency, for dedicated devices")
    p.add_argument("--reference", default=DEFAULT_REFERENCE, metavar="MODEL",
                   help=f"reference model for relative mode (default: {DEFAULT_REFERENCE})")
    p.add_argument("--min-effect", type=_fraction, default=None,
                   help=f"smallest slowdown that counts, e.g. 0.1 or 10%% (default: {DEFAULT_MIN_EFFECT * 100:g}%% "
                        "for latency, 2%% for instructions)")
    p.add_argument("--confidence", type=_fraction, default=0.95, help="bootstrap interval level (default: 0.95)")
    p.add_argument("--resamples", type=positive_int, default=BOOTSTRAP_RESAMPLES,
                   help=f"bootstrap resamples (default: {BOOTSTRAP_RESAMPLES})")
    p.add_argument("--seed", type=int, default=BOOTSTRAP_SEED, help="bootstrap seed (fixed, so verdicts repeat)")
    p.add_argument("--on-other-device", choices=ON_OTHER_DEVICE, default="judge",
                   help="when the baseline's device fingerprint differs from this run's: judge latency anyway "
                        "(default), or report slowdowns as warnings that do not fail the run")
    p.add_argument("--markdown", type=Path, metavar="FILE", help="also write the markdown report here")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the per-point verdicts as JSON")
    p.add_argument("--plot", type=Path, metavar="FILE",
                   help="PNG path (default: regress-<results name>-<UTC time>.png beside the results, one per run; "
                        "history.png in the history folder)")
    p.add_argument("--no-plot", action="store_true", help="do not draw the PNG")
    add_verbosity_options(p)
    return p


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    logs.ensure_setup(args.debug)
    console = Console()
    if not console.is_terminal:  # CI logs: do not squeeze the tables into 80 columns
        console = Console(width=150)
    if args.metric == "instructions" and (args.history is not None or args.paired is not None):
        raise BenchmarkError(f"{'--history' if args.history is not None else '--paired'} measures latency, not "
                             "--metric instructions", "leave --metric out for it")
    if args.history is not None:
        if args.results or args.baseline or args.update_baseline:
            raise BenchmarkError("--history does not combine with --results/--baseline/--update-baseline",
                                 "run the trend and the check as two commands")
        from .history import find_results

        inputs = find_results(args.history) if args.history.is_dir() else []
        _refuse_writing_inputs(inputs, _outputs(args, args.plot or args.history / "history.png"))
        return _history(args, console)
    if args.paired is not None:
        from .paired_latency import run_paired

        if args.results is None or len(args.results) != 1 or args.baseline or args.update_baseline:
            raise BenchmarkError("--paired takes the candidate's --results FILE and no --baseline",
                                 "e.g. mobexport regress --paired base-out --results cand-out/results.jsonl")
        return run_paired(args.paired, args.results[0], DEFAULT_MIN_EFFECT if args.min_effect is None
                          else args.min_effect, args.confidence, args.rounds, args.seed, console)
    if args.results is None or args.baseline is None:
        raise BenchmarkError("both --results and --baseline are needed", "e.g. mobexport regress --baseline "
                             "benchmarks/regress/baselines/ci_local_cpu.json --results out/results.jsonl")
    if args.update_baseline:
        _refuse_writing_inputs(args.results, [("--baseline", args.baseline)])
        if args.metric == "instructions":
            from .instruction_cli import update_baseline

            return update_baseline(args.results, args.baseline, console)
        return _update_baseline(args, console)
    if len(args.results) != 1:
        raise BenchmarkError(f"compare one results file at a time ({len(args.results)} given)",
                             "several results files make a baseline with --update-baseline")
    args.results = args.results[0]
    if args.metric == "instructions":
        from .instruction_cli import check

        _refuse_writing_inputs([args.results, args.baseline], _outputs(args, None))
        return check(args.results, args.baseline, args.min_effect, console, args.markdown, args.json, _write)
    _refuse_writing_inputs([args.results, args.baseline], _outputs(args, args.plot or args.results.parent / "regress.png"))
    return _compare(args, console)


def _outputs(args, plot: Path) -> list[tuple[str, Path]]:
    """(option, path) of every file this run will write."""
    written = [("--markdown", args.markdown), ("--json", args.json), ("--plot", None if args.no_plot else plot)]
    return [(option, path) for option, path in written if path is not None]


def _same_file(a: Path, b: Path) -> bool:
    """The same file: one inode (hard links, symlinks), or the same resolved path for one not yet written."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


def _refuse_writing_inputs(inputs, outputs: list[tuple[str, Path]]) -> None:
    """Refuse before any work: an output that is one of the inputs, two outputs on one file, or an output
    that would overwrite a results file or a baseline that this run does not own."""
    for option, path in outputs:
        for source in inputs:
            if _same_file(path, source):
                raise BenchmarkError(f"{option} '{path}' is one of the inputs ('{source}'): refusing to overwrite it",
                                     f"give {option} another path")
    for i, (option, path) in enumerate(outputs):
        for other_option, other in outputs[i + 1:]:
            if _same_file(path, other):
                raise BenchmarkError(f"{option} and {other_option} name the same file '{path}'",
                                     "give each output its own path")
        if option != "--baseline" and _holds_measurements(path):
            raise BenchmarkError(f"{option} '{path}' holds benchmark results or a baseline: refusing to overwrite it",
                                 f"give {option} another path")


def _holds_measurements(path: Path) -> bool:
    """Whether ``path`` is an existing results file or baseline (data a report must never replace)."""
    from .baseline import _is_baseline_file
    from mobexport.benchmarks.results.records import load_results

    if not Path(path).is_file():
        return False
    if _is_baseline_file(path):
        return True
    try:
        records, _ = load_results(path)
    except BenchmarkError:
        return False
    return bool(records)


def _update_baseline(args, console: Console) -> int:
    notes: list[str] = []
    baseline = baseline_from_results(args.results, args.baseline,
                                     command=["mobexport", "regress", "--update-baseline", "--results",
                                              *map(str, args.results), "--baseline", str(args.baseline)],
                                     notes=notes)
    for note in notes:
        console.print(f"[yellow]note[/]: {note}", highlight=False)
    models = sorted({case.model for case in baseline.points})
    resolutions = sorted({case.resolution for case in baseline.points})
    runs = len(args.results)
    console.print(f"wrote baseline [bold]{args.baseline}[/]: {len(baseline.points)} points "
                  f"({', '.join(models)} at {', '.join(map(str, resolutions))}) from {runs} run{'s' * (runs != 1)}")
    if baseline.replaced:
        console.print(baseline.replaced, highlight=False)
    skipped = baseline.provenance.get("skipped_failed_cases") or []
    if skipped:
        console.print(f"[yellow]left out {len(skipped)} failed case(s)[/]: {', '.join(skipped)}")
    if args.reference not in models:
        console.print(f"[yellow]warning[/]: the reference model {args.reference} is not in it, so relative checks "
                      f"against this baseline will fail; add it to the sweep (mobexport bench --models "
                      f"{','.join(models[:2])},{args.reference} ...), or check with --reference "
                      f"{models[0]} or --mode absolute", highlight=False)
    return 0


def _compare(args, console: Console) -> int:
    from .plot import default_plot_path, plot_comparison
    from .report import comparison_markdown, print_comparison

    settings = RegressionSettings(mode=args.mode, reference=args.reference,
                                  min_effect=DEFAULT_MIN_EFFECT if args.min_effect is None else args.min_effect,
                                  confidence=args.confidence, resamples=args.resamples, seed=args.seed)
    baseline = read_baseline(args.baseline)
    notes: list[str] = []
    records = read_records(args.results, notes)
    refuse_other_metric(records, "latency", str(args.results))
    report = compare(baseline.points, points_from_records(records, str(args.results)), settings,
                     baseline_provenance=baseline.provenance, current_provenance=provenance_of(records, args.results),
                     on_other_device=args.on_other_device)

    plot_path = None
    if not args.no_plot:
        plot_path = plot_comparison(report, args.plot or default_plot_path(args.results))
    markdown = comparison_markdown(report, args.baseline.name, str(args.results),
                                   plot_path.name if plot_path else None)
    for note in notes:
        console.print(f"[yellow]note[/]: {note}", highlight=False)
    print_comparison(console, report)
    _write_markdown(markdown, args.markdown, console)
    if args.json:
        _write(args.json, json.dumps({
            "exit_status": report.exit_status,
            "settings": settings.__dict__,
            "machine_factor": report.machine_factor(),
            "warnings": report.warnings,
            "points": [p.to_dict() for p in report.points],
        }, indent=1, default=str) + "\n", "--json")
    if plot_path:
        console.print(f"plot: {plot_path}")
    return report.exit_status


def _history(args, console: Console) -> int:
    from .history import history_of
    from .plot import plot_history
    from .report import history_markdown, print_history

    history = history_of(args.history, mode=args.mode, reference=args.reference)
    plot_path = None if args.no_plot else plot_history(history, args.plot or args.history / "history.png")
    print_history(console, history)
    _write_markdown(history_markdown(history, plot_path.name if plot_path else None), args.markdown, console)
    if plot_path:
        console.print(f"plot: {plot_path}")
    return 0


def _write(path: Path, text: str, option: str) -> None:
    write_text_durably(path, text, f"{option} file", f"choose another {option} path")


def _write_markdown(markdown: str, path: Path | None, console: Console) -> None:
    """To --markdown (atomically) and, in GitHub Actions, appended to the job summary."""
    if path is not None:
        _write(path, markdown, "--markdown")
        console.print(f"markdown: {path}")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        try:
            with open(summary, "a") as f:
                f.write(markdown + "\n")
        except OSError as exc:  # the verdict matters more than the summary: warn, do not fail
            log.warning("could not append to GITHUB_STEP_SUMMARY '%s': %s", summary, exc)
