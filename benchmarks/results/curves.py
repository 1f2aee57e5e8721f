"""Curve points: the unit that baselines store and regression tracking compares.

A *curve* is one model in one setting (target, quantization, passes, device,
batch, threads) measured across resolutions; a *point* is one resolution of
it. Results files and baselines are both read into points so that everything
downstream compares like with like. A point keeps its raw latency samples:
verdicts recompute their intervals from them rather than trusting stored ones.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable

import numpy as np

from mobexport.errors import BenchmarkError

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


def points_from_records(records: Iterable[BenchRecord], source: str = "results") -> dict[CaseKey, CurvePoint]:
    """One point per case. A resumed sweep may hold a case twice: the last
    successful measurement wins; a case that only ever failed stays failed."""
    points: dict[CaseKey, CurvePoint] = {}
    for record in records:
        point = point_from_record(record, source)
        previous = points.get(record.case)
        if previous is not None and previous.ok and not point.ok:
            continue
        points[record.case] = point
    return points


def sort_key(case: CaseKey) -> tuple:
    """Order points by setting, then model, then resolution."""
    return (case.target, case.quantization, case.passes, case.device, case.batch, case.threads,
            case.model, case.resolution)
