"""The curve model: records -> one record per case -> points and table rows, and where curves cross.

A *curve* is one model in one setting (target, quantization, passes, device,
batch, threads) measured across resolutions; a *point* is one resolution of
it. Results files and baselines are both read into points so that everything
downstream compares like with like. A point keeps its raw latency samples:
verdicts recompute their intervals from them rather than trusting stored ones.

A resumed sweep may hold a case twice: :func:`latest_by_case` is the one rule
(the last successful record of a case wins; a case that only ever failed stays
failed) behind both the points regression tracking compares and the rows of
``curves.csv``.

A *crossover* is a resolution at which a model's curve crosses the baseline's
within one setting: the metric difference changes sign between two
neighbouring resolutions, and the crossing is interpolated linearly between
them. A latency crossover is *clear* when the 95% confidence intervals of the
two medians are disjoint at both neighbours, i.e. the ordering on each side
is not noise.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Protocol, TypeVar

import numpy as np

from mobexport.devices.device import EAGER
from mobexport.errors import BenchmarkError
from mobexport.manifest import write_text_atomic
from mobexport.shapes import side

from .records import BenchRecord, CaseKey


@dataclass(frozen=True)
class CurveId:
    """A curve: a case without its resolution."""

    model: str
    target: str
    quantization: str
    passes: str
    device: str
    batch: int
    threads: int

    @classmethod
    def of(cls, case: CaseKey) -> "CurveId":
        return cls(case.model, case.target, case.quantization, case.passes, case.device, case.batch, case.threads)

    def setting(self) -> str:
        """The curve's setting without the model, e.g. 'onnx' or 'onnx/int8 b4 t2'."""
        parts = [self.target if self.quantization == "none" else f"{self.target}/{self.quantization}"]
        if self.passes != "default":
            parts.append(f"passes={self.passes}")
        if self.device != "local":
            parts.append(f"on {self.device}")
        if self.batch != 1:
            parts.append(f"b{self.batch}")
        if self.threads:
            parts.append(f"t{self.threads}")
        return " ".join(parts)


@dataclass(frozen=True)
class CurvePoint:
    """One measured case: its raw samples and what it cost (MACs, params).

    A point from a results file is one run. A baseline point may pool several
    runs of the same sweep: then ``samples_ms`` holds all their samples and
    ``runs`` each run's own, keyed by the run's index in the baseline, so
    that run-to-run variation (which no single run's samples show) can be
    measured, and a model's run can be paired with its reference's.
    """

    case: CaseKey
    samples_ms: tuple[float, ...]
    status: str = "ok"
    error: str | None = None
    macs: int | None = None
    params: int | None = None
    timestamp: str | None = None
    runs: tuple[tuple[int, tuple[float, ...]], ...] = ()

    def run_medians(self) -> dict[int, float]:
        """Median of each run (empty for a single-run point)."""
        return {run: float(np.median(samples)) for run, samples in self.runs}

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def curve(self) -> CurveId:
        return CurveId.of(self.case)

    @property
    def median_ms(self) -> float:
        return float(np.median(self.samples_ms))

    def samples(self) -> np.ndarray:
        return np.asarray(self.samples_ms, dtype=np.float64)


def reference_case(case: CaseKey, reference_model: str) -> CaseKey:
    """The reference model's case measured alongside ``case`` (same setting and resolution)."""
    return replace(case, model=reference_model)


def point_from_record(record: BenchRecord, source: str) -> CurvePoint:
    if record.status == "ok":
        samples = tuple(float(s) for s in record.samples_ms)
        if not samples:
            raise BenchmarkError(f"{source}: case {record.case.label()} has no raw latency samples",
                                 "re-run 'mobexport bench'; regression tracking needs samples_ms")
        if not all(np.isfinite(samples)) or min(samples) <= 0:
            raise BenchmarkError(f"{source}: case {record.case.label()} has non-positive or non-finite samples",
                                 "is this a mobexport results.jsonl?")
    else:
        samples = ()
    return CurvePoint(case=record.case, samples_ms=samples, status=record.status, error=record.error,
                      macs=record.macs, params=record.params, timestamp=record.timestamp)


class _Measured(Protocol):
    case: CaseKey
    status: str


Measured = TypeVar("Measured", bound=_Measured)


def latest_by_case(measured: Iterable[Measured]) -> dict[CaseKey, Measured]:
    """One record (or point) per case: the last successful one, else the last failure."""
    chosen: dict[CaseKey, Measured] = {}
    for item in measured:
        previous = chosen.get(item.case)
        if previous is not None and previous.status == "ok" and item.status != "ok":
            continue
        chosen[item.case] = item
    return chosen


def points_from_records(records: Iterable[BenchRecord], source: str = "results") -> dict[CaseKey, CurvePoint]:
    """One point per case (:func:`latest_by_case`); every record is checked, superseded ones too."""
    return latest_by_case([point_from_record(record, source) for record in records])


def sort_key(case: CaseKey) -> tuple:
    """Order points by setting, then model, then resolution."""
    return (case.target, case.quantization, case.passes, case.device, case.batch, case.threads,
            case.model, case.resolution)


# The per-resolution table of a sweep (curves.csv).

COLUMNS = (
    "model", "target", "quantization", "passes", "device", "batch", "threads", "resolution", "status",
    "latency_median_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms", "latency_mean_ms", "latency_std_ms", "latency_min_ms",
    "ci95_low_ms", "ci95_high_ms", "samples", "throughput_ips", "init_ms", "peak_memory_mib",
    "gmacs", "params_m", "ms_per_gmac", "artifact_mib", "vs_baseline", "error",
)
# metric column -> axis label, for plots and crossovers (throughput at batch 1 is 1000 / latency:
# its crossovers are the latency's, so it is not a metric of its own here).
METRICS = {
    "latency_median_ms": "latency, median (ms)",
    "gmacs": "MACs (G)",
    "ms_per_gmac": "latency per GMAC (ms/GMAC)",
}


def _round(value, digits=4):
    return None if value is None else round(float(value), digits)


def row_of(record: BenchRecord) -> dict:
    c, lat = record.case, record.latency_ms or {}
    gmacs = record.macs / 1e9 if record.macs else None
    median = lat.get("median")
    row = {
        "model": c.model, "target": c.target, "quantization": c.quantization, "passes": c.passes,
        "device": c.device, "batch": c.batch, "threads": c.threads, "resolution": c.resolution,
        "status": record.status,
        "latency_median_ms": _round(median), "latency_p90_ms": _round(lat.get("p90")),
        "latency_p95_ms": _round(lat.get("p95")), "latency_p99_ms": _round(lat.get("p99")),
        "latency_mean_ms": _round(lat.get("mean")), "latency_std_ms": _round(lat.get("std")),
        "latency_min_ms": _round(lat.get("min")), "ci95_low_ms": _round(lat.get("ci95_low")),
        "ci95_high_ms": _round(lat.get("ci95_high")), "samples": lat.get("n"),
        "throughput_ips": _round(record.throughput_ips, 2), "init_ms": _round(record.init_ms, 1),
        "peak_memory_mib": _round(record.peak_memory_bytes / 2**20, 1) if record.peak_memory_bytes else None,
        "gmacs": _round(gmacs, 6), "params_m": _round(record.params / 1e6, 3) if record.params else None,
        "ms_per_gmac": _round(median / (gmacs * c.batch)) if median and gmacs else None,
        "artifact_mib": _round(record.artifact["size_bytes"] / 2**20, 2) if record.artifact.get("size_bytes") else None,
        "vs_baseline": None,
        "error": record.error,
    }
    return row


def setting_label(setting: tuple) -> str:
    """'onnx', 'executorch/int8 on adb:SERIAL t4', ... (eager PyTorch has no graph passes to name)."""
    target, quantization, passes, *rest = setting
    return CurveId("", target, quantization, "default" if target == EAGER else passes, *rest).setting()


def setting_key(row: dict) -> tuple:
    """A row's setting without its model: rows with equal keys are compared with each other."""
    return (row["target"], row["quantization"], row["passes"], row["device"], row["batch"], row["threads"])


def curve_rows(records: Iterable[BenchRecord], baseline: str | None = None) -> list[dict]:
    """Table rows sorted by setting, model, resolution; ``vs_baseline`` = latency / baseline's."""
    rows = [row_of(r) for r in latest_by_case(records).values()]
    rows.sort(key=lambda r: (setting_key(r), r["model"] != baseline, r["model"], side(r["resolution"]),
                             str(r["resolution"])))
    if baseline:
        reference = {(setting_key(r), r["resolution"]): r["latency_median_ms"]
                     for r in rows if r["model"] == baseline and r["status"] == "ok"}
        for r in rows:
            base = reference.get((setting_key(r), r["resolution"]))
            if r["status"] == "ok" and base:
                r["vs_baseline"] = round(r["latency_median_ms"] / base, 3)
    return rows


def csv_text(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in COLUMNS})
    return buffer.getvalue()


def write_csv(rows: list[dict], path: Path) -> Path:
    return write_text_atomic(Path(path), csv_text(rows))


@dataclass(frozen=True)
class Crossover:
    setting: tuple
    model: str
    baseline: str
    metric: str
    between: tuple[int, int]       # the neighbouring resolutions the curves cross between
    at: float                      # linearly interpolated crossing resolution
    model_lower_above: bool        # True: above ``at`` the model's metric is below the baseline's
    clear: bool | None = None      # latency only: CIs disjoint on both sides

    def describe(self) -> str:
        label = METRICS.get(self.metric, self.metric)
        side = "lower" if self.model_lower_above else "higher"
        return (f"{self.model} vs {self.baseline} ({setting_label(self.setting)}): {label} crosses at ~{self.at:.0f} px "
                f"(between {self.between[0]} and {self.between[1]}); above it {self.model}'s is {side}"
                + ("" if self.clear is None else (" [clear]" if self.clear else " [within noise]")))


def _curve(rows: list[dict], model: str, setting: tuple, metric: str) -> dict[int, dict]:
    return {r["resolution"]: r for r in rows if r["model"] == model and setting_key(r) == setting
            and r["status"] == "ok" and r.get(metric) is not None}


def _disjoint(a: dict, b: dict) -> bool:
    return a["ci95_high_ms"] < b["ci95_low_ms"] or b["ci95_high_ms"] < a["ci95_low_ms"]


def crossovers(rows: list[dict], baseline: str, metric: str = "latency_median_ms") -> list[Crossover]:
    """Every resolution where a model's ``metric`` curve crosses the baseline's, per setting."""
    found = []
    settings = sorted({setting_key(r) for r in rows})
    models = sorted({r["model"] for r in rows} - {baseline})
    for setting in settings:
        base = _curve(rows, baseline, setting, metric)
        for model in models:
            mine = _curve(rows, model, setting, metric)
            shared = sorted(set(base) & set(mine), key=side)
            diffs = [(r, mine[r][metric] - base[r][metric]) for r in shared]
            for (r1, d1), (r2, d2) in zip(diffs, diffs[1:]):
                if d1 * d2 >= 0:
                    continue
                at = side(r1) + (side(r2) - side(r1)) * d1 / (d1 - d2)
                clear = None
                if metric == "latency_median_ms":
                    clear = _disjoint(mine[r1], base[r1]) and _disjoint(mine[r2], base[r2])
                found.append(Crossover(setting, model, baseline, metric, (r1, r2), float(at), d2 < 0, clear))
    return found
