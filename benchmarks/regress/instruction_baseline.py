"""Instruction-count baselines: per curve point, the instructions of one inference, and what counted them.

A sibling of :mod:`.baseline` (same ``kind``, ``"metric": "instructions"``):
each point keeps the per-inference counts of every run that made it (so the
comparison sees the counter's own spread), and the document records the
versions that decide a count (valgrind's and the runtimes'), so that a runtime
upgrade is reported as one, not as a regression. Made only from results files
of ``mobexport bench --metric instructions``, written atomically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from mobexport import __version__
from mobexport.errors import BenchmarkError

from mobexport.benchmarks.regress.baseline import BASELINE_KIND, BASELINE_SCHEMA_VERSION, _format_json, _is_baseline_file, backup_path, \
    provenance_of
from mobexport.benchmarks.results.curves import sort_key
from mobexport.benchmarks.results.records import BenchRecord, CaseKey, read_records
from mobexport.safe_files import copy_durably, loads_json, read_untrusted_text, write_bytes_durably
from mobexport.benchmarks.results.schemas import check

METRIC = "instructions"
REGENERATE = "regenerate it with 'mobexport regress --metric instructions --update-baseline'"
# The tool behind each target's count (tool_versions key), besides valgrind.
RUNTIME_OF_TARGET = {"onnx": "onnxruntime", "executorch": "executorch"}


@dataclass(frozen=True)
class InstructionPoint:
    """One case's instruction counts: each run's per-inference samples (a results file gives one run)."""

    case: CaseKey
    runs: tuple[tuple[int, ...], ...] = ()
    status: str = "ok"
    error: str | None = None
    macs: int | None = None
    params: int | None = None
    timestamp: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def samples(self) -> tuple[int, ...]:
        return tuple(s for run in self.runs for s in run)

    @property
    def median(self) -> float:
        """Median of the runs' medians: one run's count, robust to an odd run."""
        return _median([_median(run) for run in self.runs])


def _median(values) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return float(ordered[middle]) if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def metric_of(record: BenchRecord) -> str:
    return METRIC if record.instructions else "latency"


def refuse_other_metric(records: list[BenchRecord], metric: str, source: str) -> None:
    """A results file of the other metric is refused in one line (its points would mean nothing here)."""
    other = [r for r in records if r.status == "ok" and metric_of(r) != metric]
    if other:
        found = metric_of(other[0])
        raise BenchmarkError(f"{source} holds {found} measurements ({other[0].case.label()}), not {metric}",
                             f"compare it with 'mobexport regress --metric {found}', or measure with "
                             f"'mobexport bench --metric {metric}'")


def points_from_records(records: list[BenchRecord], source: str = "results") -> dict[CaseKey, InstructionPoint]:
    """One point per case (the last successful record wins, as for latency)."""
    refuse_other_metric(records, METRIC, source)
    points: dict[CaseKey, InstructionPoint] = {}
    for r in records:
        if r.status == "ok":
            point = InstructionPoint(r.case, (tuple(int(s) for s in r.instructions["samples"]),), macs=r.macs,
                                     params=r.params, timestamp=r.timestamp)
        else:
            point = InstructionPoint(r.case, status=r.status, error=r.error, macs=r.macs, params=r.params)
        previous = points.get(r.case)
        if previous is not None and previous.ok and not point.ok:
            continue
        points[r.case] = point
    return points


def tool_versions_of(records: list[BenchRecord]) -> dict:
    """valgrind's and the runtimes' versions the counts were made with (the last record's of each)."""
    versions: dict = {}
    for r in records:
        if r.status == "ok" and r.instructions:
            versions.update(r.instructions.get("tool_versions") or {})
    return versions


@dataclass
class InstructionBaseline:
    name: str
    points: dict[CaseKey, InstructionPoint]
    tool_versions: dict
    provenance: dict = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def to_dict(self) -> dict:
        return {
            "kind": BASELINE_KIND,
            "schema_version": BASELINE_SCHEMA_VERSION,
            "metric": METRIC,
            "name": self.name,
            "created": self.created,
            "mobexport_version": __version__,
            "tool_versions": self.tool_versions,
            "provenance": self.provenance,
            "points": [{"case": vars(p.case).copy(), "instructions": round(p.median), "macs": p.macs,
                        "params": p.params, "timestamp": p.timestamp,
                        "runs": [{"run": i, "samples": list(run)} for i, run in enumerate(p.runs)]}
                       for p in (self.points[c] for c in sorted(self.points, key=sort_key))],
        }

    @classmethod
    def from_dict(cls, data, source: str = "baseline") -> "InstructionBaseline":
        if not isinstance(data, dict) or data.get("kind") != BASELINE_KIND:
            raise BenchmarkError(f"{source} is not a mobexport baseline (no \"kind\": \"{BASELINE_KIND}\")",
                                 "make one with 'mobexport regress --metric instructions --update-baseline'")
        metric = data.get("metric", "latency")
        if metric != METRIC:
            raise BenchmarkError(f"{source} was made with the metric {ascii(metric)}, not instructions",
                                 "compare it with 'mobexport regress --metric latency', or make an instruction "
                                 "baseline with 'mobexport regress --metric instructions --update-baseline'")
        check(data, "instruction_baseline", source, REGENERATE)
        points: dict[CaseKey, InstructionPoint] = {}
        for index, raw in enumerate(data["points"]):
            case = CaseKey(**raw["case"])
            if case in points:
                raise BenchmarkError(f"{source}: points[{index}] ({case.label()}) appears twice", REGENERATE)
            points[case] = InstructionPoint(case, tuple(tuple(run["samples"]) for run in raw["runs"]),
                                            macs=raw.get("macs"), params=raw.get("params"),
                                            timestamp=raw.get("timestamp"))
        return cls(name=str(data.get("name", Path(source).stem)), points=points,
                   tool_versions=dict(data["tool_versions"]), provenance=data.get("provenance") or {},
                   created=str(data.get("created", "")))

    @classmethod
    def from_runs(cls, runs: list[tuple[Path, list[BenchRecord]]], name: str,
                  command: list[str] | None = None) -> "InstructionBaseline":
        """A baseline of every case counted in the runs (results files of the same sweep)."""
        per_run = [points_from_records(records, str(path)) for path, records in runs]
        versions = [tool_versions_of(records) for _, records in runs]
        if any(v != versions[0] for v in versions):
            raise BenchmarkError("the runs were counted with different tool versions "
                                 f"({', '.join(sorted({str(v) for v in versions}))})",
                                 "make a baseline from runs made with one valgrind and runtime version")
        cases = sorted({case for run in per_run for case, p in run.items() if p.ok}, key=sort_key)
        if not cases:
            raise BenchmarkError(f"{', '.join(str(p) for p, _ in runs)} has no successful instruction count",
                                 "check the sweep's failures with 'mobexport bench --metric instructions'")
        points = {}
        for case in cases:
            measured = [run[case] for run in per_run if case in run and run[case].ok]
            costs = {(p.macs, p.params) for p in measured}
            if len(costs) > 1:
                raise BenchmarkError(f"{case.label()} has different MACs/params in the runs given",
                                     "make a baseline from runs of the same code")
            last = measured[-1]
            points[case] = InstructionPoint(case, tuple(p.runs[0] for p in measured), macs=last.macs,
                                            params=last.params, timestamp=last.timestamp)
        records = [r for _, rs in runs for r in rs]
        provenance = provenance_of(records, runs[0][0] if len(runs) == 1 else None, command)
        provenance["runs"] = [str(path) for path, _ in runs]
        return cls(name=name, points=points, tool_versions=versions[0], provenance=provenance)


def read_instruction_baseline(path: Path) -> InstructionBaseline:
    path = Path(path)
    text = read_untrusted_text(path, "baseline", "make one with 'mobexport regress --metric instructions "
                                                 "--update-baseline --results FILE --baseline FILE'")
    return InstructionBaseline.from_dict(loads_json(text, f"baseline '{path}'", REGENERATE), source=str(path))


def write_instruction_baseline(baseline: InstructionBaseline, path: Path) -> str | None:
    """Write atomically, keeping a replaced baseline in ``PATH.bak``; refuse to replace what is not a baseline."""
    path, backup = Path(path), backup_path(path)
    for existing in (path, backup):
        if (existing.exists() or existing.is_symlink()) and not _is_baseline_file(existing):
            raise BenchmarkError(f"'{existing}' exists and is not a mobexport baseline: refusing to replace it",
                                 "choose another --baseline path, or move that file away")
    replaced = None
    if path.exists():
        copy_durably(path, backup, "baseline backup", "choose a writable path with --baseline")
        replaced = f"replaced the previous baseline; it is kept in {backup}"
    write_bytes_durably(path, _format_json(baseline.to_dict()).encode("utf-8"), "baseline",
                        "choose a writable path with --baseline", mode=0o644, make_parents=True)
    return replaced


def instruction_baseline_from_results(paths: list[Path], baseline_path: Path, command: list[str] | None = None,
                                      notes: list[str] | None = None) -> tuple[InstructionBaseline, str | None]:
    baseline = InstructionBaseline.from_runs([(Path(p), read_records(Path(p), notes)) for p in paths],
                                             name=Path(baseline_path).stem, command=command)
    return baseline, write_instruction_baseline(baseline, baseline_path)
