"""Trends: how each curve point moved across a series of results files.

``mobexport regress --history DIR`` reads every ``*.jsonl`` results file under
DIR, orders the runs by when they were measured (the earliest record's
timestamp), and tracks each point's median: normalised by the reference model
of the same run in relative mode, in milliseconds in absolute mode. It draws
no verdict; it shows drift that a pairwise check against one baseline hides.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mobexport.errors import BenchmarkError

from mobexport.benchmarks.results.curves import CurvePoint, points_from_records, reference_case, sort_key
from mobexport.benchmarks.results.records import CaseKey, read_records


@dataclass(frozen=True)
class Run:
    path: Path
    measured_at: str
    points: dict[CaseKey, CurvePoint]
    devices: tuple[str, ...] = ()


@dataclass
class History:
    runs: list[Run]
    mode: str
    reference: str
    series: dict[CaseKey, list[float | None]]  # one value per run, None where not measured

    def change(self, case: CaseKey) -> float | None:
        """First to last measured value of a point, as a fraction (+0.2 = 20% slower)."""
        values = [v for v in self.series[case] if v is not None]
        return values[-1] / values[0] - 1 if len(values) >= 2 else None


def find_results(directory: Path) -> list[Path]:
    directory = Path(directory)
    if not directory.is_dir():
        raise BenchmarkError(f"history directory '{directory}' does not exist", "point --history at a folder of results")
    files = sorted(p for p in directory.rglob("*.jsonl") if p.is_file())
    if not files:
        raise BenchmarkError(f"no results files (*.jsonl) under '{directory}'",
                             "collect the results.jsonl of each run in that folder")
    return files


def load_runs(files: list[Path]) -> list[Run]:
    """Runs ordered by measurement time; a file with no successful case is an error."""
    runs = []
    for path in files:
        records = read_records(path)
        stamps = sorted(r.timestamp for r in records if r.status == "ok" and r.timestamp)
        if not stamps:
            raise BenchmarkError(f"results file '{path}' has no successful measurement",
                                 "remove it from the history folder")
        devices = tuple(sorted({str(r.device_info.get("cpu") or r.device_info.get("name") or r.case.device)
                                for r in records if r.status == "ok"}))
        runs.append(Run(path=path, measured_at=stamps[0], points=points_from_records(records, str(path)),
                        devices=devices))
    return sorted(runs, key=lambda run: (run.measured_at, str(run.path)))


def build_history(runs: list[Run], mode: str = "relative", reference: str = "mobilenet_v3_large_100") -> History:
    cases = sorted({case for run in runs for case, p in run.points.items() if p.ok}, key=sort_key)
    if mode == "relative":
        cases = [case for case in cases if case.model != reference]
        _require_references(runs, cases, reference)
    series = {case: [_value(run, case, mode, reference) for run in runs] for case in cases}
    return History(runs=runs, mode=mode, reference=reference, series=series)


def _value(run: Run, case: CaseKey, mode: str, reference: str) -> float | None:
    point = run.points.get(case)
    if point is None or not point.ok:
        return None
    if mode == "relative":
        return point.median_ms / run.points[reference_case(case, reference)].median_ms
    return point.median_ms


def _require_references(runs: list[Run], cases: list[CaseKey], reference: str) -> None:
    for run in runs:
        for case in cases:
            point = run.points.get(case)
            ref = run.points.get(reference_case(case, reference))
            if point is not None and point.ok and (ref is None or not ref.ok):
                raise BenchmarkError(
                    f"'{run.path}' measured {case.label()} without the reference {reference} beside it",
                    f"include {reference} in every run, pick another with --reference, or use --mode absolute",
                )


def history_of(directory: Path, mode: str = "relative", reference: str = "mobilenet_v3_large_100") -> History:
    history = build_history(load_runs(find_results(directory)), mode, reference)
    if not history.series:
        raise BenchmarkError(f"the results under '{directory}' hold no case besides the reference {reference}",
                             "use --mode absolute to track the reference itself")
    return history
