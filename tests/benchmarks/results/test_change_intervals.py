"""Intervals of a change: the bootstrap's coverage, t quantiles, the multiple-comparison level."""

from __future__ import annotations

import numpy as np
import pytest

from mobexport.benchmarks.results.change_intervals import (
    bootstrap_ratio_of_medians,
    point_level,
    prediction_half_width,
    student_t_quantile,
)


def test_bootstrap_interval_covers_the_true_ratio_of_medians():
    rng = np.random.default_rng(0)
    hits = 0
    for trial in range(40):
        a = 10 * np.exp(rng.normal(0, 0.08, 60))
        b = 12 * np.exp(rng.normal(0, 0.08, 60))
        ratio, low, high = bootstrap_ratio_of_medians(b, a, np.random.default_rng(trial))
        hits += low <= 1.2 <= high
        assert low <= ratio <= high
    assert hits >= 34  # a 95% interval; percentile bootstrap of a median runs a little narrow at n=60


def test_student_t_quantiles_match_tables():
    for p, df, table in [(0.975, 1, 12.706), (0.975, 4, 2.776), (0.975, 9, 2.262), (0.95, 30, 1.697), (0.995, 3, 5.841)]:
        assert student_t_quantile(p, df) == pytest.approx(table, abs=1e-3)


def test_prediction_interval_covers_new_runs_at_its_level():
    rng = np.random.default_rng(1)
    misses = 0
    trials = 2000
    per_unit_sd = prediction_half_width(1.0, 4, 5, 0.9)  # the half-width scales with the estimated sd
    for _ in range(trials):
        runs = rng.normal(0.0, 0.2, 5)
        new = rng.normal(0.0, 0.2)
        misses += abs(new - runs.mean()) > per_unit_sd * float(np.std(runs, ddof=1))
    assert misses / trials == pytest.approx(0.10, abs=0.025)


def test_point_level_is_bonferroni():
    assert point_level(0.95, 1) == pytest.approx(0.95)
    assert point_level(0.95, 6) == pytest.approx(1 - 0.05 / 6)
    assert point_level(0.95, 0) == pytest.approx(0.95)
