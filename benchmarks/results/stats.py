"""Latency statistics that hold up on a noisy machine.

Medians rather than means (with the tail users quote: p90, p95, p99, linear
interpolation between samples as numpy's default), and a bootstrap 95% confidence interval of the
median (percentile method, resampling the samples with replacement). The
bootstrap uses a fixed seed so the same samples always give the same
interval: a verdict must not change between two reads of one results file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20261121


@dataclass(frozen=True)
class LatencyStats:
    """Summary of latency samples, in milliseconds."""

    n: int
    median: float
    p90: float
    p95: float
    p99: float
    mean: float
    std: float
    min: float
    ci95_low: float
    ci95_high: float

    def to_dict(self) -> dict:
        return asdict(self)


def bootstrap_median_ci(samples, confidence: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES,
                        seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the median."""
    x = np.asarray(samples, dtype=np.float64)
    if x.size == 1:
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    medians = np.median(x[rng.integers(0, x.size, size=(resamples, x.size))], axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(medians, [tail, 100 - tail])
    return float(low), float(high)


def summarize(samples_ms) -> LatencyStats:
    x = np.asarray(samples_ms, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no latency samples")
    low, high = bootstrap_median_ci(x)
    return LatencyStats(
        n=int(x.size),
        median=float(np.median(x)),
        p90=float(np.percentile(x, 90)),
        p95=float(np.percentile(x, 95)),
        p99=float(np.percentile(x, 99)),
        mean=float(x.mean()),
        std=float(x.std(ddof=1)) if x.size > 1 else 0.0,
        min=float(x.min()),
        ci95_low=low,
        ci95_high=high,
    )
