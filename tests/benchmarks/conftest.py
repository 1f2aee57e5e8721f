"""Synthetic benchmark records for regression-tracking tests.

Latency samples are drawn with numpy from a seeded log-normal distribution
(median = the case's true latency, a chosen coefficient of variation) with a
few scheduler-hiccup outliers, like a shared CPU produces. A "machine factor"
scales every case of a run (a uniformly faster or slower machine); "drift"
scales each case by its own random factor (log-normal, sigma = drift), like
other jobs coming and going on a shared machine between cases; a "slowdown"
scales chosen (model, resolution) points only (a real regression).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from mobexport.benchmarks.results.records import BenchRecord, CaseKey, append_record
from mobexport.benchmarks.results.stats import summarize

REFERENCE = "mobilenet_v3_large_100"
# model -> (median ms at 224 px, MACs at 224 px, params)
SYNTHETIC_MODELS = {
    REFERENCE: (9.0, 216_600_000, 5_483_032),
    "mobile_former_52m": (7.0, 52_000_000, 3_472_000),
    "mobile_former_294m": (16.0, 286_700_000, 11_420_000),
}
RESOLUTIONS = (160, 192, 224)


def synthetic_records(seed: int = 0, *, cv: float = 0.07, samples: int = 60, machine: float = 1.0,
                      drift: float = 0.0, slowdown: dict | None = None, macs_scale: dict | None = None, models=None,
                      resolutions=RESOLUTIONS, start: datetime | None = None) -> list[BenchRecord]:
    """One run of a sweep: every model at every resolution, with seeded noise."""
    rng = np.random.default_rng(seed)
    slowdown = slowdown or {}
    macs_scale = macs_scale or {}
    sigma = np.sqrt(np.log1p(cv**2))
    when = start or datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
    records = []
    for model in models or SYNTHETIC_MODELS:
        base_ms, macs_224, params = SYNTHETIC_MODELS[model]
        for res in resolutions:
            scale = (res / 224) ** 2
            true_ms = base_ms * scale * machine * slowdown.get((model, res), 1.0)
            if drift:
                true_ms *= np.exp(rng.normal(0.0, drift))
            x = true_ms * np.exp(rng.normal(0.0, sigma, samples))
            hiccups = rng.random(samples) < 0.03
            x[hiccups] *= rng.uniform(1.5, 3.0, hiccups.sum())
            macs = int(round(macs_224 * scale * macs_scale.get((model, res), 1.0)))
            records.append(BenchRecord(
                case=CaseKey(model=model, target="onnx", resolution=res),
                latency_ms=summarize(x).to_dict(), samples_ms=[float(v) for v in x],
                throughput_ips=1000.0 / float(np.median(x)), macs=macs, params=params, warmup=5, iters=samples,
                device_info={"cpu": "Synthetic CPU @ 3 GHz", "cores": 2, "os": "Linux"},
                tool_versions={"mobexport": "0.1.0", "onnxruntime": "1.20.0"},
                timestamp=when.isoformat(timespec="seconds"),
            ))
            when += timedelta(seconds=10)
    return records


def write_results(path, records) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    for record in records:
        append_record(path, record)
    return path


@pytest.fixture
def make_results(tmp_path):
    """``make_results(name, **synthetic_records kwargs) -> path of a results.jsonl``."""

    def make(name: str = "run", **kwargs):
        return write_results(tmp_path / name / "results.jsonl", synthetic_records(**kwargs))

    return make


@pytest.fixture
def synthetic():
    """The ``synthetic_records`` factory, for tests that work on records in memory."""
    return synthetic_records
