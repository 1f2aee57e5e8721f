"""Every family near its MACs: latency per GMAC of each zoo family, relative to MobileNetV3-L's.

    python -m mobexport.benchmarks.studies.zoo_efficiency [--models M1,M2,...] [--baseline mobilenet_v3_large_100]
        [--runtimes onnx,executorch] [--resolutions 224,512] [--threads 1] [--rounds 10] [--per-round 2]
        [--passes default|none|...] [--out DIR] [--rebuild]

MACs alone do not predict latency: attention, dynamic activations and
reshapes cost time that a MAC count does not see. A compiler that serves
every family should bring each one's milliseconds per GMAC near a plain CNN's.
By default the study takes the smallest variant of each zoo family (by
reference MACs), plus Mobile-Former-294M and the baseline, exports each with
the pipeline (static, at each resolution, with ``--passes``; reused from
``--out`` unless ``--rebuild``) and times every (runtime, resolution,
threads) group interleaved, one worker process per model, as
``passes_benchmark`` does. A model that does not take a resolution (outside
its range, or not a multiple of its stride) or fails to export gets an
``n/a: <reason>`` row.

Per row: GMACs (the manifest's count of the exported program), median ms,
ms/GMAC, and ms/GMAC relative to the baseline's in the same group, computed
as the median of per-round latency ratios times the MACs ratio. Goal: at most
2.0x. Before/after a compiler change: run the same command on both commits
(``--passes`` only chooses the passes; ``none`` is not the "before").
Results: ``OUT/zoo_efficiency.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from .compiler_benchmark import (
    Case,
    build_with_pipeline,
    paired_ratio,
    progress_bar,
    split,
    time_groups,
    wide_console,
)

EXTRA_MODELS = ("mobile_former_294m",)
BASELINE = "mobilenet_v3_large_100"
GOAL_RELATIVE = 2.0  # ms/GMAC at most this many times the baseline's


def default_models(baseline: str = BASELINE) -> list[str]:
    """The smallest variant of each family, then Mobile-Former-294M and the baseline (no repeats)."""
    from mobexport.models import smallest_per_family

    return list(dict.fromkeys([*smallest_per_family(), *EXTRA_MODELS, baseline]))


def not_applicable(model: str, resolution: int) -> str | None:
    """Why ``model`` cannot be exported at ``resolution`` (its spec's range and stride), or None."""
    from mobexport.errors import first_line
    from mobexport.models import get_spec

    try:
        get_spec(model).check_resolution(resolution)
    except Exception as exc:  # ResolutionError: its first line says which rule
        return first_line(exc, 200)
    return None


def build_all(cases: list[Case], out: Path, passes: str, rebuild: bool, progress, console) -> None:
    from mobexport.errors import first_line

    task = progress.add_task("build", total=len(cases))
    for case in cases:
        progress.update(task, description=f"build {case.model} {case.target} @{case.resolution}")
        case.refused = not_applicable(case.model, case.resolution)
        if case.refused is None:
            try:
                build_with_pipeline(case, out / "artifacts" / passes / f"{case.target}-{case.resolution}", rebuild,
                                    passes=passes)
            except Exception as exc:  # reported as this row's n/a, the study goes on
                case.refused = f"export failed: {type(exc).__name__}: {first_line(exc, 200)}"
        if case.refused:
            console.print(f"[yellow]n/a[/] {case.model} {case.target} @{case.resolution}: {case.refused}",
                          highlight=False)
        progress.advance(task)


def gmacs(case: Case) -> float | None:
    total = (case.manifest.get("macs") or {}).get("total_macs") if case.manifest else None
    return total / 1e9 if total else None


def rows_for(cases: list[Case], baseline: str, timed: dict, per_turn: int) -> list[dict]:
    """One row per (target, resolution, threads, model), timed or n/a."""
    from mobexport.models import get_spec

    rows = []
    for (target, res, threads), result in timed.items():
        timed_cases = result["cases"]
        base = timed_cases.get(f"mobexport/{baseline}/{target}/{res}")
        base_gmacs = gmacs(base) if base else None
        for case in (c for c in cases if c.target == target and c.resolution == res):
            got = timed_cases.get(case.key)
            row = {"model": case.model, "family": get_spec(case.model).family, "target": target, "resolution": res,
                   "threads": threads, "gmacs": gmacs(case), "median_ms": None, "ms_per_gmac": None,
                   "relative_to_baseline": None, "goal_met": None, "samples": 0, "na": None}
            if got is None or not got.samples_ms:
                row["na"] = case.refused or result["error"] or "not timed"
                rows.append(row)
                continue
            row.update(median_ms=round(got.median, 3), samples=len(got.samples_ms))
            if row["gmacs"]:
                row["ms_per_gmac"] = round(got.median / row["gmacs"], 3)
            ratio = paired_ratio(got, base, per_turn)
            if ratio is not None and row["gmacs"] and base_gmacs:
                row["relative_to_baseline"] = round(ratio * base_gmacs / row["gmacs"], 3)
                row["goal_met"] = row["relative_to_baseline"] <= GOAL_RELATIVE
            rows.append(row)
    return rows


def print_table(summary: dict, console) -> None:
    from rich.table import Table

    def fmt(value, spec=".2f"):
        return "-" if value is None else format(value, spec)

    groups = sorted({(r["target"], r["resolution"], r["threads"]) for r in summary["rows"]})
    for target, res, threads in groups:
        load = summary["load_average"].get(f"{target}/{res}/x{threads}") or {}
        table = Table(title=f"{target} @{res}, {threads} thread(s), passes={summary['passes']}: ms/GMAC vs "
                            f"{summary['baseline']} (median of per-round ratios x MACs ratio; load "
                            f"{fmt(load.get('mean'), '.1f')})")
        for col in ("model", "family", "GMACs", "median ms", "ms/GMAC", f"x {summary['baseline']}",
                    f"goal <= {GOAL_RELATIVE}x", "note"):
            table.add_column(col, justify="left" if col in ("model", "family", "note") else "right")
        for r in (r for r in summary["rows"] if (r["target"], r["resolution"], r["threads"]) == (target, res, threads)):
            if r["na"]:
                table.add_row(r["model"], r["family"], fmt(r["gmacs"], ".3f"), "n/a", "", "", "", r["na"])
                continue
            goal = "-" if r["goal_met"] is None else "[green]met[/]" if r["goal_met"] else "[red]not met[/]"
            table.add_row(r["model"], r["family"], fmt(r["gmacs"], ".3f"), fmt(r["median_ms"]),
                          fmt(r["ms_per_gmac"]), fmt(r["relative_to_baseline"]), goal, "")
        console.print(table)


def run(args) -> dict:
    console = wide_console()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models = split(args.models) if args.models else default_models(args.baseline)
    models = list(dict.fromkeys([*models, args.baseline]))  # the relative column needs the baseline
    targets = split(args.runtimes)
    resolutions, threads = split(args.resolutions, int), split(args.threads, int)
    cases = [Case(m, "mobexport", t, r) for t in targets for r in resolutions for m in models]
    groups = [(t, r, n) for t in targets for r in resolutions for n in threads]
    with progress_bar(console) as progress:
        build_all(cases, out, args.passes, args.rebuild, progress, progress.console)
        timed = time_groups(cases, groups, args.rounds, args.per_round, progress, progress.console)
    summary = {
        "study": "zoo_efficiency", "models": models, "baseline": args.baseline, "passes": args.passes,
        "rounds": args.rounds, "per_round": args.per_round, "goal_relative": GOAL_RELATIVE,
        "relative_statistic": "median of per-round latency ratios x baseline GMACs / model GMACs",
        "macs_source": "total_macs of each manifest (the exported program at that resolution)",
        "rows": rows_for(cases, args.baseline, timed, args.per_round),
        "load_average": {f"{t}/{r}/x{n}": result["load_average"] for (t, r, n), result in timed.items()},
        "export_s": {c.key: c.export_s for c in cases if not c.refused},
        "host": {"cpus": os.cpu_count(), "platform": sys.platform},
    }
    (out / "zoo_efficiency.json").write_text(json.dumps(summary, indent=2))
    print_table(summary, console)
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mobexport.benchmarks.studies.zoo_efficiency",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="",
                        help="comma-separated (default: the smallest of each family, mobile_former_294m, the baseline)")
    parser.add_argument("--baseline", default=BASELINE, help="the model every row is compared with (always timed)")
    parser.add_argument("--runtimes", default="onnx,executorch")
    parser.add_argument("--resolutions", default="224,512")
    parser.add_argument("--threads", default="1", help="runtime intra-op threads, comma-separated")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=2, help="inferences per model per round")
    parser.add_argument("--passes", default="default", help="the pipeline's --passes (e.g. default, none)")
    parser.add_argument("--out", default="mobexport-out/zoo-efficiency")
    parser.add_argument("--rebuild", action="store_true", help="export again even where an artifact exists")
    args = parser.parse_args(argv)
    started = time.time()
    run(args)
    print(f"done in {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
