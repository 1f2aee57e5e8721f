"""Baselines: the curves a results file is compared against, with where they came from.

``benchmarks/baselines/<name>.json`` holds one entry per curve point (model,
setting, resolution) with its latency summary *and its raw samples*, so the
comparison recomputes confidence intervals instead of trusting stored ones,
plus provenance: device fingerprints, tool versions, git revision and dates.

A baseline is made from one or more results files of the same sweep
(``mobexport regress --update-baseline --results A [B ...]``), never by hand,
and written atomically. Each run's samples stay apart (``runs``): with two
or more runs the comparison can see how much the machine varies from run to
run, which no single run's samples show.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from mobexport import __version__
from mobexport.errors import BenchmarkError, OutputDirError
from mobexport.manifest import sha256_file, write_text_atomic

from .curves import CurvePoint, points_from_records, sort_key
from .records import BenchRecord, CaseKey, read_records
from .stats import summarize

BASELINE_SCHEMA_VERSION = 1
BASELINE_KIND = "mobexport-baseline"
SAMPLE_DECIMALS = 4  # 0.1 microsecond: far below timer noise, keeps the file readable


@dataclass
class Baseline:
    name: str
    points: dict[CaseKey, CurvePoint]
    provenance: dict = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    schema_version: int = BASELINE_SCHEMA_VERSION

    def to_dict(self) -> dict:
        return {
            "kind": BASELINE_KIND,
            "schema_version": self.schema_version,
            "name": self.name,
            "created": self.created,
            "mobexport_version": __version__,
            "provenance": self.provenance,
            "points": [_point_to_dict(self.points[case]) for case in sorted(self.points, key=sort_key)],
        }

    @classmethod
    def from_dict(cls, data: dict, source: str = "baseline") -> "Baseline":
        if not isinstance(data, dict) or data.get("kind") != BASELINE_KIND:
            raise BenchmarkError(f"{source} is not a mobexport baseline (no \"kind\": \"{BASELINE_KIND}\")",
                                 "make one with 'mobexport regress --update-baseline'")
        version = data.get("schema_version")
        if version != BASELINE_SCHEMA_VERSION:
            raise BenchmarkError(f"{source} has baseline schema version {version!r}, expected {BASELINE_SCHEMA_VERSION}",
                                 "regenerate it with 'mobexport regress --update-baseline'")
        raw_points = data.get("points")
        if not isinstance(raw_points, list) or not raw_points:
            raise BenchmarkError(f"{source} has no points", "regenerate it with 'mobexport regress --update-baseline'")
        points: dict[CaseKey, CurvePoint] = {}
        for index, raw in enumerate(raw_points):
            point = _point_from_dict(raw, f"{source}: point {index}")
            if point.case in points:
                raise BenchmarkError(f"{source}: case {point.case.label()} appears twice",
                                     "regenerate it with 'mobexport regress --update-baseline'")
            points[point.case] = point
        return cls(name=str(data.get("name", Path(source).stem)), points=points,
                   provenance=data.get("provenance") or {}, created=str(data.get("created", "")),
                   schema_version=version)

    @classmethod
    def from_records(cls, records: Iterable[BenchRecord], name: str, results_path: Path | None = None,
                     command: list[str] | None = None) -> "Baseline":
        """A baseline of every successful case in ``records`` (one run); failed cases are left out."""
        return cls.from_runs([(results_path, list(records))], name, command)

    @classmethod
    def from_runs(cls, runs: list[tuple[Path | None, list[BenchRecord]]], name: str,
                  command: list[str] | None = None) -> "Baseline":
        """A baseline pooling several runs of the same sweep, each run's samples kept apart."""
        per_run = [points_from_records(records, str(path or f"run {i}")) for i, (path, records) in enumerate(runs)]
        cases = sorted({case for points in per_run for case, p in points.items() if p.ok}, key=sort_key)
        if not cases:
            sources = ", ".join(str(path) for path, _ in runs if path) or "the results"
            raise BenchmarkError(f"{sources} has no successful measurement to make a baseline of",
                                 "check the sweep's failures with 'mobexport bench'")
        points = {}
        for case in cases:
            measured = [(i, run[case]) for i, run in enumerate(per_run) if case in run and run[case].ok]
            costs = {(p.macs, p.params) for _, p in measured}
            if len(costs) > 1:
                raise BenchmarkError(f"{case.label()} has different MACs/params in the runs given ({sorted(costs, key=str)})",
                                     "make a baseline from runs of the same code")
            last = measured[-1][1]
            points[case] = CurvePoint(case=case, samples_ms=tuple(s for _, p in measured for s in p.samples_ms),
                                      macs=last.macs, params=last.params, timestamp=last.timestamp,
                                      runs=tuple((i, p.samples_ms) for i, p in measured))
        all_records = [r for _, records in runs for r in records]
        provenance = provenance_of(all_records, runs[0][0] if len(runs) == 1 else None, command)
        provenance["runs"] = [{"results_file": str(path) if path else None,
                               "results_sha256": sha256_file(path) if path and Path(path).is_file() else None,
                               "measured_from": _first_stamp(records)} for path, records in runs]
        provenance["skipped_failed_cases"] = sorted(
            r.case.label() for r in all_records if r.status != "ok" and r.case not in points)
        return cls(name=name, points=points, provenance=provenance)


def _first_stamp(records: list[BenchRecord]) -> str | None:
    stamps = sorted(r.timestamp for r in records if r.status == "ok" and r.timestamp)
    return stamps[0] if stamps else None


def provenance_of(records: Iterable[BenchRecord], results_path: Path | None = None,
                  command: list[str] | None = None) -> dict:
    """Where measurements came from: device fingerprints, tool versions, git revision, dates, file."""
    measured = [r for r in records if r.status == "ok"]
    stamps = sorted(r.timestamp for r in measured if r.timestamp)
    return {
        "devices": _unique(r.device_info for r in measured),
        "tool_versions": _unique(r.tool_versions for r in measured),
        "git": git_revision(Path.cwd()),
        "measured_from": stamps[0] if stamps else None,
        "measured_to": stamps[-1] if stamps else None,
        "results_file": str(results_path) if results_path else None,
        "results_sha256": sha256_file(results_path) if results_path and Path(results_path).is_file() else None,
        "command": command or [],
    }


def _point_to_dict(point: CurvePoint) -> dict:
    stats = summarize(point.samples_ms)
    runs = point.runs or ((0, point.samples_ms),)
    return {
        "case": asdict(point.case),
        "latency_ms": {k: round(v, SAMPLE_DECIMALS) if isinstance(v, float) else v for k, v in stats.to_dict().items()},
        "throughput_ips": round(point.case.batch * 1000.0 / stats.median, 3),
        "macs": point.macs,
        "params": point.params,
        "timestamp": point.timestamp,
        "runs": [{"run": run, "samples_ms": [round(s, SAMPLE_DECIMALS) for s in samples]} for run, samples in runs],
    }


def _samples_ok(samples) -> bool:
    return (isinstance(samples, list) and bool(samples)
            and all(isinstance(s, (int, float)) and not isinstance(s, bool) and s > 0 for s in samples))


def _point_from_dict(raw: dict, source: str) -> CurvePoint:
    if not isinstance(raw, dict):
        raise BenchmarkError(f"{source} is not an object", "regenerate the baseline")
    case_fields = {f.name for f in fields(CaseKey)}
    case = raw.get("case")
    if not isinstance(case, dict) or not {"model", "target", "resolution"} <= set(case) or set(case) - case_fields:
        raise BenchmarkError(f"{source} has a malformed case {case!r}", "regenerate the baseline")
    where = f"{source} ({case.get('model')}@{case.get('resolution')})"
    runs = raw.get("runs")
    if not isinstance(runs, list) or not runs:
        raise BenchmarkError(f"{where} has no runs", "regenerate the baseline")
    for run in runs:
        if not isinstance(run, dict) or not isinstance(run.get("run"), int) or isinstance(run.get("run"), bool):
            raise BenchmarkError(f"{where} has a run without an integer 'run' index", "regenerate the baseline")
        if not _samples_ok(run.get("samples_ms")):
            raise BenchmarkError(f"{where} lacks positive raw samples_ms in run {run['run']}", "regenerate the baseline")
    if len({run["run"] for run in runs}) != len(runs):
        raise BenchmarkError(f"{where} lists a run twice", "regenerate the baseline")
    for count in ("macs", "params"):
        if raw.get(count) is not None and (not isinstance(raw[count], int) or isinstance(raw[count], bool)):
            raise BenchmarkError(f"{source}: {count} must be an integer or null", "regenerate the baseline")
    try:
        key = CaseKey(**case)
    except TypeError as exc:
        raise BenchmarkError(f"{source} has a malformed case ({exc})", "regenerate the baseline") from None
    per_run = tuple((run["run"], tuple(float(s) for s in run["samples_ms"])) for run in runs)
    return CurvePoint(case=key, samples_ms=tuple(s for _, samples in per_run for s in samples), macs=raw.get("macs"),
                      params=raw.get("params"), timestamp=raw.get("timestamp"), runs=per_run)


def _unique(dicts: Iterable[dict]) -> list[dict]:
    seen: list[dict] = []
    for d in dicts:
        if d and d not in seen:
            seen.append(d)
    return seen


def git_revision(directory: Path) -> dict | None:
    """The checked-out commit of ``directory`` and whether tracked files differ from it.

    Read-only git calls (``diff-index`` does not refresh the index, so a
    touched-but-unchanged file may read as dirty: it errs on the safe side).
    """
    try:
        revision = subprocess.run(["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True,
                                  timeout=10)
        if revision.returncode != 0:
            return None
        dirty = subprocess.run(["git", "diff-index", "--quiet", "HEAD", "--"], cwd=directory, capture_output=True,
                               timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return {"revision": revision.stdout.strip(), "dirty": dirty.returncode != 0}


_NUMBER_LIST = re.compile(r"\[\s*((?:-?[0-9.eE+-]+,\s*)*-?[0-9.eE+-]+)\s*\]")


def _format_json(data: dict) -> str:
    """Indented JSON with number lists (the samples) on one line each: short diffs, readable file."""
    text = json.dumps(data, indent=1)
    return _NUMBER_LIST.sub(lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text) + "\n"


def read_baseline(path: Path) -> Baseline:
    path = Path(path)
    if not path.is_file():
        raise BenchmarkError(f"baseline '{path}' does not exist",
                             "make one with 'mobexport regress --update-baseline --results FILE --baseline FILE'")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BenchmarkError(f"baseline '{path}' is not valid JSON ({exc.msg} at line {exc.lineno})",
                             "regenerate it with 'mobexport regress --update-baseline'") from None
    return Baseline.from_dict(data, source=str(path))


def write_baseline(baseline: Baseline, path: Path) -> Path:
    """Write atomically: a reader sees the old baseline or the new one, never half of one."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, _format_json(baseline.to_dict()))
        path.chmod(0o644)  # the temporary file it was renamed from is private (mkstemp); a baseline is shared
        return path
    except OSError as exc:
        raise OutputDirError(f"cannot write baseline '{path}' ({exc.strerror or exc})",
                             "choose a writable path with --baseline") from None


def baseline_from_results(results_paths, baseline_path: Path, command: list[str] | None = None) -> Baseline:
    """Read one or more results files (runs of the same sweep) and write them as the baseline."""
    paths = [Path(p) for p in ([results_paths] if isinstance(results_paths, (str, Path)) else results_paths)]
    baseline = Baseline.from_runs([(path, read_records(path)) for path in paths], name=Path(baseline_path).stem,
                                  command=command)
    write_baseline(baseline, baseline_path)
    return baseline
