"""Baselines: the curves a results file is compared against, with where they came from.

``benchmarks/regress/baselines/<name>.json`` holds one entry per curve point (model,
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
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from mobexport import __version__
from mobexport.errors import BenchmarkError
from mobexport.manifest import sha256_file

from mobexport.benchmarks.results.curves import CurvePoint, points_from_records, sort_key
from mobexport.benchmarks.results.records import BenchRecord, CaseKey, read_records
from mobexport.safe_files import copy_durably, loads_json, read_untrusted_text, write_bytes_durably
from mobexport.benchmarks.results.schemas import check
from mobexport.benchmarks.results.stats import summarize

BASELINE_SCHEMA_VERSION = 1
BASELINE_KIND = "mobexport-baseline"
REGENERATE = "regenerate it with 'mobexport regress --update-baseline'"
SAMPLE_DECIMALS = 4  # 0.1 microsecond: far below timer noise, keeps the file readable


@dataclass
class Baseline:
    name: str
    points: dict[CaseKey, CurvePoint]
    provenance: dict = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    schema_version: int = BASELINE_SCHEMA_VERSION
    replaced: str | None = field(default=None, compare=False)  # what writing it replaced, for the user

    def to_dict(self) -> dict:
        return {
            "kind": BASELINE_KIND,
            "schema_version": self.schema_version,
            "name": self.name,
            "created": self.created,
            "mobexport_version": __version__,
            "metric": "latency",
            "provenance": self.provenance,
            "points": [_point_to_dict(self.points[case]) for case in sorted(self.points, key=sort_key)],
        }

    @classmethod
    def from_dict(cls, data: dict, source: str = "baseline") -> "Baseline":
        """A baseline from its JSON document, checked against the baseline schema first."""
        if not isinstance(data, dict) or data.get("kind") != BASELINE_KIND:
            raise BenchmarkError(f"{source} is not a mobexport baseline (no \"kind\": \"{BASELINE_KIND}\")",
                                 "make one with 'mobexport regress --update-baseline'")
        metric = data.get("metric", "latency")
        if metric != "latency":  # one line, not a schema error on its points
            raise BenchmarkError(f"{source} was made with the metric {ascii(metric)}, not latency",
                                 "compare it with 'mobexport regress --metric instructions'" if metric == "instructions"
                                 else "give a latency baseline")
        check(data, "baseline", source, REGENERATE)
        points: dict[CaseKey, CurvePoint] = {}
        for index, raw in enumerate(data["points"]):
            point = _point_from_dict(raw, f"{source}: points[{index}]")
            if point.case in points:
                raise BenchmarkError(f"{source}: case {point.case.label()} appears twice", REGENERATE)
            points[point.case] = point
        return cls(name=str(data.get("name", Path(source).stem)), points=points,
                   provenance=data.get("provenance") or {}, created=str(data.get("created", "")),
                   schema_version=data["schema_version"])

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


def _point_from_dict(raw: dict, source: str) -> CurvePoint:
    """A point of a baseline document that passed the schema check."""
    case, runs = raw["case"], raw["runs"]
    if len({run["run"] for run in runs}) != len(runs):
        raise BenchmarkError(f"{source} ({case['model']}@{case['resolution']}) lists a run twice", REGENERATE)
    per_run = tuple((run["run"], tuple(float(s) for s in run["samples_ms"])) for run in runs)
    return CurvePoint(case=CaseKey(**case), samples_ms=tuple(s for _, samples in per_run for s in samples),
                      macs=raw.get("macs"), params=raw.get("params"), timestamp=raw.get("timestamp"), runs=per_run)


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
    text = read_untrusted_text(path, "baseline",
                               "make one with 'mobexport regress --update-baseline --results FILE --baseline FILE'")
    return Baseline.from_dict(loads_json(text, f"baseline '{path}'", REGENERATE), source=str(path))


def write_baseline(baseline: Baseline, path: Path) -> Path:
    """Write durably: a reader sees the old baseline or the new one, never half of one."""
    return write_bytes_durably(Path(path), _format_json(baseline.to_dict()).encode("utf-8"), "baseline",
                               "choose a writable path with --baseline", mode=0o644, make_parents=True)


def _is_baseline_file(path: Path) -> bool:
    """Whether ``path`` holds a document of kind mobexport-baseline (valid or not in other respects)."""
    try:
        data = loads_json(read_untrusted_text(path, "baseline", ""), str(path), "")
    except BenchmarkError:
        return False
    return isinstance(data, dict) and data.get("kind") == BASELINE_KIND


def backup_path(path: Path) -> Path:
    return Path(path).with_name(Path(path).name + ".bak")


def replace_baseline(baseline: Baseline, path: Path) -> str | None:
    """Write ``baseline`` to ``path``, keeping the one it replaces in ``PATH.bak``; says what was replaced.

    A file at ``path`` (or at the backup's place) that is not a mobexport
    baseline is refused, never overwritten: it may be the user's results or
    anything else mistyped after ``--baseline``.
    """
    path, backup = Path(path), backup_path(path)
    for existing in (path, backup):
        if (existing.exists() or existing.is_symlink()) and not _is_baseline_file(existing):
            raise BenchmarkError(f"'{existing}' exists and is not a mobexport baseline: refusing to replace it",
                                 "choose another --baseline path, or move that file away")
    replaced = None
    if path.exists():
        old = None
        try:
            old = read_baseline(path)
        except BenchmarkError:
            pass
        copy_durably(path, backup, "baseline backup", "choose a writable path with --baseline")
        what = f"{len(old.points)} points, created {old.created or 'at an unknown time'}" if old else "unreadable"
        replaced = f"replaced the previous baseline ({what}); it is kept in {backup}"
    write_baseline(baseline, path)
    return replaced


def baseline_from_results(results_paths, baseline_path: Path, command: list[str] | None = None,
                          notes: list[str] | None = None) -> Baseline:
    """Read one or more results files (runs of the same sweep) and write them as the baseline.

    ``notes`` collects what the reading noticed (a torn last line), for the caller to print.
    """
    paths = [Path(p) for p in ([results_paths] if isinstance(results_paths, (str, Path)) else results_paths)]
    baseline = Baseline.from_runs([(path, read_records(path, notes)) for path in paths],
                                  name=Path(baseline_path).stem, command=command)
    baseline.replaced = replace_baseline(baseline, baseline_path)
    return baseline
