"""Latency statistics on synthetic samples with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from mobexport.benchmarks.results.stats import bootstrap_median_ci, summarize


def test_summary_of_known_samples():
    s = summarize([4.0, 1.0, 3.0, 2.0, 5.0])
    assert (s.n, s.median, s.mean, s.min) == (5, 3.0, 3.0, 1.0)
    assert s.p90 == pytest.approx(4.6)
    assert s.std == pytest.approx(np.sqrt(2.5))            # sample standard deviation (ddof=1)
    assert s.ci95_low <= s.median <= s.ci95_high


def test_one_sample_and_no_samples():
    s = summarize([7.5])
    assert (s.median, s.std, s.ci95_low, s.ci95_high) == (7.5, 0.0, 7.5, 7.5)
    with pytest.raises(ValueError):
        summarize([])


def test_ci_covers_the_true_median_of_a_skewed_distribution():
    """Log-normal latencies (median 10 ms) with scheduler hiccups: the CI should cover 10 ms
    in about 95% of independent runs, and the median should ignore the outliers."""
    rng = np.random.default_rng(1)
    covered = 0
    for _ in range(200):
        x = 10.0 * np.exp(rng.normal(0.0, 0.1, 60))
        x[rng.random(60) < 0.03] *= 3.0
        low, high = bootstrap_median_ci(x, resamples=500, seed=int(rng.integers(1 << 31)))
        covered += low <= 10.0 * np.exp(0.0) * 1.0 <= high
    assert 0.88 <= covered / 200 <= 1.0


def test_ci_narrows_with_more_samples_and_is_deterministic():
    rng = np.random.default_rng(2)
    few, many = rng.lognormal(0, 0.2, 20), rng.lognormal(0, 0.2, 2000)
    width = lambda x: np.subtract(*bootstrap_median_ci(x)[::-1])  # noqa: E731
    assert width(many) < width(few) / 3
    assert bootstrap_median_ci(few) == bootstrap_median_ci(few.copy())


def test_median_resists_outliers_mean_does_not():
    s = summarize([10.0] * 19 + [1000.0])
    assert s.median == 10.0 and s.mean > 50.0 and s.p90 == 10.0
