"""Records -> the per-resolution table of a sweep (``curves.csv``) and where curves cross.

One row per measured case (the latest successful record of a case wins, as in
:func:`mobexport.benchmarks.curves.points_from_records`). A *crossover* is a
resolution at which a model's curve crosses the baseline's within one setting
(target, quantization, passes, device, batch, threads): the metric difference
changes sign between two neighbouring resolutions, and the crossing is
interpolated linearly between them. A latency crossover is *clear* when the
95% confidence intervals of the two medians are disjoint at both neighbours,
i.e. the ordering on each side is not noise.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from mobexport.devices.device import EAGER
from mobexport.manifest import write_text_atomic
from mobexport.shapes import side

from .curves import CurveId
from .records import BenchRecord, CaseKey

COLUMNS = (
    "model", "target", "quantization", "passes", "device", "batch", "threads", "resolution", "status",
    "latency_median_ms", "latency_p90_ms", "latency_mean_ms", "latency_std_ms", "latency_min_ms",
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


def latest_by_case(records: Iterable[BenchRecord]) -> dict[CaseKey, BenchRecord]:
    """One record per case: the last successful one, else the last failure."""
    chosen: dict[CaseKey, BenchRecord] = {}
    for record in records:
        previous = chosen.get(record.case)
        if previous is not None and previous.status == "ok" and record.status != "ok":
            continue
        chosen[record.case] = record
    return chosen


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
