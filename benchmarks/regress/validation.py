"""How trustworthy is ``mobexport regress`` on this machine? Repeat the CI sweep and count.

    python -m mobexport.benchmarks.regress.validation --baseline benchmarks/regress/baselines/ci_local_cpu.json \\
        --work /tmp/regress-validation --repeats 10
    python -m mobexport.benchmarks.regress.validation --baseline ... --work ... --repeats 5 \\
        --inject "mobile_former_52m@160=0.15,mobile_former_294m@224=0.15"

Each repeat runs the CI sweep afresh (exported artifacts are reused from
``WORK/cache``; only the timing is repeated) into ``WORK/runs/<label>-<i>/``,
then compares it with the baseline as ``mobexport regress`` would. Without
``--inject`` every flagged point is a false alarm; with it, the injected
points should be flagged and no other. ``--analyze-only`` re-reads the runs
already in WORK. Prints, and writes to ``WORK/validation-<label>.md``, the
false-alarm and detection counts and each point's run-to-run spread.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from mobexport.manifest import write_text_atomic

from .baseline import read_baseline
from mobexport.benchmarks.results.curves import points_from_records
from mobexport.benchmarks.results.records import read_records
from .verdict import RegressionSettings, Status, compare
from .slowdown_injection import ENV_VAR, fraction_for, parse_injections

CI_MODELS = ["mobile_former_52m", "mobile_former_294m", "mobilenet_v3_large_100"]
CI_RESOLUTIONS = [160, 192, 224]


def measure(work: Path, label: str, repeats: int, inject: str, console: Console, threads: int = 0) -> None:
    """Run the CI sweep ``repeats`` times; results go to WORK/runs/<label>-<i>/results.jsonl."""
    from mobexport.devices.local import LocalDevice
    from mobexport.devices.measure import MeasurePolicy

    from mobexport.benchmarks.sweep.plan import SweepPlan
    from mobexport.benchmarks.sweep.run import RESULTS_NAME, run_sweep

    cache = work / "cache"
    device = LocalDevice()
    if inject:
        parse_injections(inject)  # refuse a malformed spec before measuring anything
        os.environ[ENV_VAR] = inject
        device.worker_command = [sys.executable, "-m", "mobexport.benchmarks.regress.slowdown_injection"]
    plan = SweepPlan(models=CI_MODELS, targets=["onnx"], resolutions=CI_RESOLUTIONS, device=device.name,
                     baseline="mobilenet_v3_large_100", threads=threads)
    plan.validate()
    for i in range(repeats):
        run_dir = work / "runs" / f"{label}-{i:02d}"
        if (run_dir / RESULTS_NAME).is_file():
            console.print(f"{run_dir} already measured, kept")
            continue
        (cache / RESULTS_NAME).unlink(missing_ok=True)
        console.print(f"[bold]repeat {i + 1}/{repeats}[/] ({label})")
        outcome = run_sweep(plan, device, cache, MeasurePolicy(), console=console)
        if outcome.failed:
            raise SystemExit(f"{len(outcome.failed)} case(s) failed (see {cache / RESULTS_NAME}); not a valid repeat")
        run_dir.mkdir(parents=True, exist_ok=True)
        shutil.move(str(cache / RESULTS_NAME), run_dir / RESULTS_NAME)


def analyze(work: Path, label: str, baseline_path: Path, inject: str, settings: RegressionSettings,
            console: Console) -> str:
    baseline = read_baseline(baseline_path)
    injections = parse_injections(inject)
    runs = sorted((work / "runs").glob(f"{label}-*/results.jsonl"))
    if not runs:
        raise SystemExit(f"no runs under {work / 'runs'} labelled '{label}'")
    false_alarm_runs, detected, expected, false_points, compared = 0, 0, 0, 0, 0
    ratios: dict[str, list[float]] = {}
    for path in runs:
        report = compare(baseline.points, points_from_records(read_records(path), str(path)), settings)
        wrong = False
        for p in report.points:
            if p.ratio is None or p.status is Status.REFERENCE:
                continue
            ratios.setdefault(p.case.label(), []).append(p.ratio)
            injected = fraction_for(injections, p.case.model, p.case.resolution) > 0
            compared += 1
            if injected:
                expected += 1
                detected += p.status is Status.REGRESSED
            elif p.status.fails_run:
                false_points += 1
                wrong = True
        false_alarm_runs += wrong
    lines = [
        f"## regress validation: {label}", "",
        f"- runs: {len(runs)}; baseline `{baseline_path}`; mode {settings.mode}, min effect {settings.min_effect:.0%}",
        f"- injected: `{inject or 'nothing'}`",
        f"- runs with a false alarm (a non-injected point flagged): {false_alarm_runs}/{len(runs)} "
        f"({false_points} of {compared - expected} non-injected point comparisons)",
    ]
    if expected:
        lines.append(f"- injected points flagged: {detected}/{expected}")
    lines += ["", "| point | ratio to baseline per run | median | spread (std of log ratio) |",
              "|---|---|---:|---:|"]
    table = Table(title=f"{label}: ratio to baseline per run ({settings.mode})", title_justify="left")
    for column in ("point", "injected", "ratios", "median", "std(log)"):
        table.add_column(column)
    for point, values in sorted(ratios.items()):
        model, resolution = point.split("/")[0], int(point.split("@")[1])
        fraction = fraction_for(injections, model, resolution)
        spread = float(np.std(np.log(values), ddof=1)) if len(values) > 1 else float("nan")
        shown = " ".join(f"{v:.3f}" for v in values)
        lines.append(f"| {point}{f' (+{fraction:.0%} injected)' if fraction else ''} | {shown} | "
                     f"{np.median(values):.3f} | {spread:.3f} |")
        table.add_row(point, f"+{fraction:.0%}" if fraction else "", shown, f"{np.median(values):.3f}", f"{spread:.3f}")
    console.print(table)
    for line in lines[2:5 + bool(expected)]:
        console.print(line)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mobexport.benchmarks.regress.validation", description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", type=Path, required=True)
    p.add_argument("--work", type=Path, required=True, help="working folder: artifact cache and one folder per run")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--inject", default="", help=f"slowdown spec, as {ENV_VAR}: MODEL@RES=FRACTION,...")
    p.add_argument("--label", help="name of this series of runs (default: 'clean' or 'inject')")
    p.add_argument("--threads", type=int, default=0, help="runtime intra-op threads, as 'mobexport bench --threads'")
    p.add_argument("--mode", choices=("relative", "absolute"), default="relative")
    p.add_argument("--min-effect", type=float, default=0.10)
    p.add_argument("--analyze-only", action="store_true", help="do not measure; compare the runs already in WORK")
    args = p.parse_args(argv)
    from mobexport import logs

    logs.ensure_setup()  # third-party noise obeys the one logging setup, as in every command
    label = args.label or ("inject" if args.inject else "clean")
    console = Console()
    if not args.analyze_only:
        measure(args.work, label, args.repeats, args.inject, console, threads=args.threads)
    settings = RegressionSettings(mode=args.mode, min_effect=args.min_effect)
    text = analyze(args.work, label, args.baseline, args.inject, settings, console)
    write_text_atomic(args.work / f"validation-{label}-{args.mode}.md", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
