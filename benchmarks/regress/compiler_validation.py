"""Does ``mobexport regress`` catch real compiler regressions? Build the CI sweep with them, measure, count.

    python -m mobexport.benchmarks.regress.compiler_validation --work /tmp/crv --repeats 10
    python -m mobexport.benchmarks.regress.compiler_validation --work /tmp/crv --analyze-only

Builds the CI sweep (Mobile-Former 52M/294M against MobileNetV3-Large, ONNX,
160/192/224 px) once per *variant*: ``shipped`` (the default passes) and one
per regression, each a real compiler change: a default graph pass turned off
for the Mobile-Former models (by default ``fold_dynamic_relu``, and, smaller,
``attention_to_bmm``; ``--regression NAME=PASS`` picks others).
MobileNetV3-Large is always built as shipped, as the reference.

Then, for each metric, it measures every variant ``--repeats`` times into
``WORK/runs/<metric>/<variant>-<i>/results.jsonl``, with each regressed
build's records filed under the shipped case identity (as a commit that
changed the default would produce them). Instruction counts run under
callgrind, several cases at once; latency repeats interleave the variants in
a shuffled order, so the machine's drift hits them all alike.

Analysis: the first ``--baseline-runs`` shipped runs make the baseline
(``mobexport regress --update-baseline`` of that metric); every later shipped
run is a clean run (any flagged point is a false alarm), every regressed run
should be flagged at its Mobile-Former points. It reports, per metric and
variant, the detection rate (flagged regressed points / regressed points),
the false-alarm rate (clean runs with any flag / clean runs), and each
regression's true size (its instruction ratio to the shipped build).

Building and timing take long (exports: minutes per case on 2 cores); run it
on an otherwise idle machine. Finished builds and runs are kept and reused.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import random
import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
from rich.console import Console

from mobexport.errors import BenchmarkError
from mobexport.manifest import write_text_atomic

from mobexport.benchmarks.results.records import BenchRecord, CaseKey, append_record, read_records
from mobexport.benchmarks.regress.verdict import RegressionSettings, Status

CI_MODELS = ("mobile_former_52m", "mobile_former_294m", "mobilenet_v3_large_100")
CI_RESOLUTIONS = (160, 192, 224)
REFERENCE = "mobilenet_v3_large_100"
DEFAULT_REGRESSIONS = {"pass-off": "fold_dynamic_relu", "small": "attention_to_bmm"}
METRICS = ("instructions", "latency")
SHIPPED = "shipped"
BASELINE_RUNS = {"instructions": 1, "latency": 5}


def default_pass_ids() -> list[str]:
    from mobexport.export.passes import resolve

    return [p.id for p in resolve("default")]


def passes_without(pass_id: str) -> str:
    from mobexport.export.passes.registry import ALIASES

    ids = default_pass_ids()
    pass_id = ALIASES.get(pass_id, pass_id)
    if pass_id not in ids:
        raise BenchmarkError(f"'{pass_id}' is not a default pass", f"choose one of: {', '.join(ids)}")
    return ",".join(p for p in ids if p != pass_id)


def variant_cases(models, resolutions, passes: str | None, regressed_prefix: str = "mobile_former"):
    """(shipped case, case to build) for every point: the regressed models get ``passes``, others the default."""
    pairs = []
    for model in models:
        for resolution in resolutions:
            shipped = CaseKey(model=model, target="onnx", resolution=resolution)
            built = replace(shipped, passes=passes) if passes and model.startswith(regressed_prefix) else shipped
            pairs.append((shipped, built))
    return pairs


def build(work: Path, variants: dict[str, str | None], models, resolutions, console: Console, prepare_case=None):
    """Export every variant's cases into WORK/builds/<variant>; returns {variant: [(shipped, Prepared)]}."""
    from mobexport.benchmarks.sweep.artifacts import prepare

    prepare_case = prepare_case or prepare
    built = {}
    for variant, passes in variants.items():
        out = work / "builds" / variant
        built[variant] = []
        for shipped, case in variant_cases(models, resolutions, passes):
            console.print(f"build {variant}: {case.label()} passes={case.passes}", highlight=False)
            built[variant].append((shipped, prepare_case(case, out)))
    return built


def _run_dir(work: Path, metric: str, variant: str, i: int) -> Path:
    return work / "runs" / metric / f"{variant}-{i:02d}"


def measure_instructions(work: Path, built: dict, repeats: int, jobs: int, console: Console,
                         count: Callable | None = None) -> None:
    """Count every variant ``repeats`` times (each case of a run in parallel, ``jobs`` at a time)."""
    from mobexport.devices.instructions import count_instructions
    from mobexport.devices.local import host_fingerprint

    from mobexport.benchmarks.sweep.instructions import instruction_record

    count = count or count_instructions
    device = {"name": "local", **host_fingerprint()}
    for i in range(repeats):
        for variant, cases in built.items():
            path = _run_dir(work, "instructions", variant, i) / "results.jsonl"
            if path.is_file():
                continue
            console.print(f"count {variant} run {i + 1}/{repeats}", highlight=False)
            with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
                counts = list(pool.map(lambda sp: count("onnx", sp[1].artifact.path, sp[0].resolution), cases))
            records = [instruction_record(replace(shipped, threads=1), prepared, c, device)
                       for (shipped, prepared), c in zip(cases, counts)]
            _write_run(path, records)


def measure_latency(work: Path, built: dict, repeats: int, console: Console, seed: int = 0) -> None:
    """Time every variant ``repeats`` times; within a repeat the variants run in a shuffled order."""
    from mobexport.devices.device import CaseFailed, CaseJob
    from mobexport.devices.local import LocalDevice
    from mobexport.devices.measure import MeasurePolicy

    from mobexport.benchmarks.sweep.run import _manifest_dict, record_of

    device, policy, rng = LocalDevice(), MeasurePolicy(), random.Random(seed)
    info = device.info()
    for i in range(repeats):
        order = list(built)
        rng.shuffle(order)
        for variant in order:
            path = _run_dir(work, "latency", variant, i) / "results.jsonl"
            if path.is_file():
                continue
            console.print(f"time {variant} run {i + 1}/{repeats}", highlight=False)
            cases = list(built[variant])
            rng.shuffle(cases)
            records = []
            for shipped, prepared in cases:
                job = CaseJob(kind="onnx", model=shipped.model, resolution=shipped.resolution,
                              artifact_path=prepared.artifact.path, manifest=_manifest_dict(prepared), policy=policy,
                              label=shipped.label())
                try:
                    records.append(record_of(shipped, prepared, device.measure(job), info, policy))
                except CaseFailed as exc:
                    raise BenchmarkError(f"{shipped.label()} ({variant}) failed: {exc}",
                                         "fix the case; a run with a failed case is not a valid repeat") from None
            _write_run(path, records)


def _write_run(path: Path, records: list[BenchRecord]) -> None:
    """Write a whole run at once (a partial run is never left to be mistaken for a finished one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name("results.partial.jsonl")
    partial.unlink(missing_ok=True)
    for record in records:
        append_record(partial, record)
    partial.replace(path)


def _runs(work: Path, metric: str, variant: str) -> list[Path]:
    return sorted((work / "runs" / metric).glob(f"{variant}-*/results.jsonl"))


def _flagged(metric: str, baseline, path: Path, min_effect: float | None) -> dict[CaseKey, Status]:
    """Each compared point's status, as 'mobexport regress --metric METRIC' decides it."""
    records = read_records(path)
    if metric == "instructions":
        from mobexport.benchmarks.regress.instruction_baseline import points_from_records, tool_versions_of
        from mobexport.benchmarks.regress.instruction_verdict import DEFAULT_THRESHOLD, compare_instructions

        report = compare_instructions(baseline, points_from_records(records, str(path)), tool_versions_of(records),
                                      min_effect or DEFAULT_THRESHOLD)
    else:
        from mobexport.benchmarks.results.curves import points_from_records
        from mobexport.benchmarks.regress.verdict import DEFAULT_MIN_EFFECT, compare

        report = compare(baseline.points, points_from_records(records, str(path)),
                         RegressionSettings(min_effect=min_effect or DEFAULT_MIN_EFFECT))
    return {p.case: p.status for p in report.points if p.status is not Status.REFERENCE}


def _baseline(metric: str, paths: list[Path]):
    if metric == "instructions":
        from mobexport.benchmarks.regress.instruction_baseline import InstructionBaseline

        return InstructionBaseline.from_runs([(p, read_records(p)) for p in paths], "validation")
    from mobexport.benchmarks.regress.baseline import Baseline

    return Baseline.from_runs([(p, read_records(p)) for p in paths], "validation")


def true_effects(work: Path, variants) -> dict[str, dict[str, float]]:
    """Each regression's instruction ratio to the shipped build per regressed point (its real size)."""
    shipped = _runs(work, "instructions", SHIPPED)
    if not shipped:
        return {}
    base = {r.case: r.instructions["median"] for r in read_records(shipped[0]) if r.instructions}
    effects = {}
    for variant in variants:
        runs = _runs(work, "instructions", variant)
        if variant != SHIPPED and runs:
            effects[variant] = {r.case.label(): r.instructions["median"] / base[r.case]
                                for r in read_records(runs[0]) if r.instructions and r.case in base
                                and r.case.model != REFERENCE}
    return effects


def analyze(work: Path, variants, min_effect: float | None = None, baseline_runs: dict | None = None) -> str:
    """The detection / false-alarm table of every metric measured in WORK, as markdown."""
    baseline_runs = {**BASELINE_RUNS, **(baseline_runs or {})}
    lines = ["## Compiler-regression validation", "",
             "| metric | variant | runs | regressed points flagged | runs with a regressed point flagged | "
             "clean runs with a false alarm |", "|---|---|---:|---:|---:|---:|"]
    for metric in METRICS:
        shipped = _runs(work, metric, SHIPPED)
        n_base = baseline_runs[metric]
        if len(shipped) <= n_base:
            continue
        baseline = _baseline(metric, shipped[:n_base])
        clean = shipped[n_base:]
        alarms = sum(any(s.fails_run for s in _flagged(metric, baseline, p, min_effect).values()) for p in clean)
        lines.append(f"| {metric} | {SHIPPED} (clean) | {len(clean)} | | | {alarms}/{len(clean)} "
                     f"({alarms / len(clean):.0%}) |")
        for variant in variants:
            if variant == SHIPPED:
                continue
            runs = _runs(work, metric, variant)
            if not runs:
                continue
            hit = total = runs_hit = 0
            for path in runs:
                statuses = _flagged(metric, baseline, path, min_effect)
                regressed = [s for case, s in statuses.items() if case.model != REFERENCE]
                hit += sum(s is Status.REGRESSED for s in regressed)
                total += len(regressed)
                runs_hit += any(s is Status.REGRESSED for s in regressed)
            lines.append(f"| {metric} | {variant} | {len(runs)} | {hit}/{total} ({hit / max(total, 1):.0%}) | "
                         f"{runs_hit}/{len(runs)} | |")
    effects = true_effects(work, variants)
    if effects:
        lines += ["", "True size of each regression (instructions per inference, regressed build / shipped):", "",
                  "| variant | " + " | ".join(sorted(next(iter(effects.values())))) + " |",
                  "|---|" + "---:|" * len(next(iter(effects.values())))]
        for variant, ratios in effects.items():
            lines.append(f"| {variant} | " + " | ".join(f"{ratios[k] - 1:+.1%}" for k in sorted(ratios)) + " |")
        spread = [abs(v - 1) for ratios in effects.values() for v in ratios.values()]
        lines.append(f"\nmedian |change| over regressed points: {float(np.median(spread)):.1%}")
    return "\n".join(lines) + "\n"


def parse_regressions(specs: list[str] | None) -> dict[str, str]:
    if not specs:
        return dict(DEFAULT_REGRESSIONS)
    found = {}
    for spec in specs:
        name, sep, pass_id = spec.partition("=")
        if not sep or not name or not pass_id or name == SHIPPED:
            raise BenchmarkError(f"--regression '{spec}' is not NAME=PASS", "e.g. --regression pass-off=fold_dynamic_relu")
        found[name] = pass_id
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mobexport.benchmarks.regress.compiler_validation",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, required=True, help="working folder: builds and runs (kept and reused)")
    p.add_argument("--repeats", type=int, default=10, help="runs per variant and metric (default: 10)")
    p.add_argument("--metrics", default="instructions,latency", help="comma-separated: instructions, latency")
    p.add_argument("--regression", action="append", metavar="NAME=PASS",
                   help="a regressed variant: the default passes without PASS for Mobile-Former (repeatable; "
                        "default: pass-off=fold_dynamic_relu, small=attention_to_bmm)")
    p.add_argument("--models", default=",".join(CI_MODELS))
    p.add_argument("--resolutions", default=",".join(map(str, CI_RESOLUTIONS)))
    p.add_argument("--jobs", type=int, default=2, help="instruction counts run this many at once (default: 2)")
    p.add_argument("--min-effect", type=float, help="threshold (default: each metric's own)")
    p.add_argument("--analyze-only", action="store_true", help="do not build or measure; analyse WORK's runs")
    args = p.parse_args(argv)
    console = Console()
    regressions = parse_regressions(args.regression)
    metrics = [m for m in args.metrics.split(",") if m]
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise SystemExit(f"unknown metric(s): {', '.join(unknown)} (use {', '.join(METRICS)})")
    variants: dict[str, str | None] = {SHIPPED: None}
    variants.update({name: passes_without(pass_id) for name, pass_id in regressions.items()})
    if not args.analyze_only:
        models, resolutions = args.models.split(","), [int(r) for r in args.resolutions.split(",")]
        built = build(args.work, variants, models, resolutions, console)
        for metric in metrics:
            runs = args.repeats + BASELINE_RUNS[metric]
            if metric == "instructions":
                measure_instructions(args.work, built, runs, args.jobs, console)
            else:
                measure_latency(args.work, built, runs, console)
    text = analyze(args.work, variants, args.min_effect)
    console.print(text, highlight=False)
    write_text_atomic(args.work / "validation.md", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
