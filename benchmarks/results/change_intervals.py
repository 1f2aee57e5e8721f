"""Intervals for the change of a latency between two measurements.

Two sources of uncertainty, two tools: the bootstrap for the noise *within*
a run (resampling its samples), a Student-t prediction interval for the
variation *between* runs (from a baseline of several runs). Both work on
ratios (log space), the unit a slowdown is stated in. No scipy: the t
quantile is computed from its density, accurate to 1e-6.
"""

from __future__ import annotations

import math

import numpy as np

from .stats import BOOTSTRAP_RESAMPLES


def bootstrap_ratio_of_medians(current: np.ndarray, baseline: np.ndarray, rng: np.random.Generator,
                               current_ref: np.ndarray | None = None, baseline_ref: np.ndarray | None = None,
                               confidence: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES,
                               ) -> tuple[float, float, float]:
    """Estimate and percentile-bootstrap interval of ``median(current)/median(baseline)``,
    each divided by its reference's median when references are given."""

    def medians(samples: np.ndarray) -> tuple[float, np.ndarray]:
        samples = np.asarray(samples, dtype=np.float64)
        draws = np.sort(samples[rng.integers(0, samples.size, size=(resamples, samples.size))], axis=1)
        middle = samples.size // 2  # sorting then indexing: exact medians, several times faster than np.median
        row_medians = draws[:, middle] if samples.size % 2 else 0.5 * (draws[:, middle - 1] + draws[:, middle])
        return float(np.median(samples)), row_medians

    cur, cur_boot = medians(current)
    base, base_boot = medians(baseline)
    estimate, boot = cur / base, cur_boot / base_boot
    if current_ref is not None and baseline_ref is not None:
        cur_ref, cur_ref_boot = medians(current_ref)
        base_ref, base_ref_boot = medians(baseline_ref)
        estimate /= cur_ref / base_ref
        boot /= cur_ref_boot / base_ref_boot
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(boot, [tail, 100 - tail])
    return float(estimate), float(low), float(high)


def point_level(confidence: float, points: int) -> float:
    """Bonferroni: each of ``points`` intervals at this level keeps the chance that a run
    with no change flags *any* point at most ``1 - confidence``."""
    return 1 - (1 - confidence) / max(points, 1)


def prediction_half_width(sd: float, df: int, k: int, confidence: float) -> float:
    """Half-width, in log space, of the interval in which one new run's value falls with
    probability ``confidence``, given the mean of ``k`` earlier runs and a standard
    deviation ``sd`` estimated with ``df`` degrees of freedom: ``t(df) sd sqrt(1 + 1/k)``."""
    return student_t_quantile((1 + confidence) / 2, df) * sd * math.sqrt(1 + 1 / k)


def student_t_quantile(p: float, df: int) -> float:
    """Quantile ``p`` (> 0.5) of Student's t with ``df`` degrees of freedom.

    With ``x = sqrt(df) tan(u)`` the t density becomes ``c cos(u)^(df-1)`` on
    [0, pi/2), smooth and bounded, so a trapezoid sum on a fine grid gives the
    CDF to better than 1e-6, and the quantile follows by interpolation.
    """
    u = np.linspace(0.0, np.pi / 2, 20001)
    density = np.cos(u) ** (df - 1)
    cumulative = np.concatenate([[0.0], np.cumsum((density[1:] + density[:-1]) / 2 * np.diff(u))])
    scale = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(math.pi)
    return math.sqrt(df) * math.tan(float(np.interp((p - 0.5) / scale, cumulative, u)))
