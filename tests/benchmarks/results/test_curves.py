"""Curve rows, the CSV, and crossover detection on synthetic curves with a known crossing."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from mobexport.benchmarks.results.curves import COLUMNS, crossovers, csv_text, curve_rows, latest_by_case
from mobexport.benchmarks.results.records import BenchRecord, CaseKey
from mobexport.benchmarks.results.stats import summarize

RESOLUTIONS = (128, 160, 192, 224, 256, 320)


def record(model, resolution, median_ms, target="onnx", spread=0.01, macs=None, status="ok", n=40):
    rng = np.random.default_rng(resolution)
    samples = list(median_ms * (1 + spread * rng.standard_normal(n)))
    return BenchRecord(case=CaseKey(model=model, target=target, resolution=resolution), status=status,
                       latency_ms=summarize(samples).to_dict() if status == "ok" else {},
                       samples_ms=samples if status == "ok" else [],
                       throughput_ips=1000 / float(np.median(samples)) if status == "ok" else None,
                       macs=macs or resolution**2 * 1000,
                       params=5_000_000, peak_memory_bytes=30 * 2**20, init_ms=100.0,
                       artifact={"size_bytes": 2**20}, error=None if status == "ok" else "boom")


def curves(model_fn, base_fn, target="onnx", spread=0.01):
    return ([record("hybrid", r, model_fn(r), target, spread) for r in RESOLUTIONS]
            + [record("base", r, base_fn(r), target, spread) for r in RESOLUTIONS])


def test_crossing_is_found_and_interpolated():
    # hybrid: 4 + r^2/20000, base: 1 + r^2/10000 -> equal at r^2 = 60000, r ~ 244.9 (between 224 and 256)
    rows = curve_rows(curves(lambda r: 4 + r * r / 20000, lambda r: 1 + r * r / 10000), baseline="base")
    found = crossovers(rows, "base")
    assert len(found) == 1
    cross = found[0]
    assert cross.model == "hybrid" and cross.between == (224, 256) and cross.model_lower_above
    d1 = (4 + 224**2 / 20000) - (1 + 224**2 / 10000)
    d2 = (4 + 256**2 / 20000) - (1 + 256**2 / 10000)
    assert cross.at == pytest.approx(224 + 32 * d1 / (d1 - d2), rel=0.02)
    assert cross.clear is True                      # 1% noise: the CIs are far apart on both sides
    assert "crosses at ~24" in cross.describe() and "[clear]" in cross.describe()


def test_noisy_crossing_is_flagged_and_parallel_curves_do_not_cross():
    # 1% apart, swapping order at 200 px, under 30% noise: a crossing, but not one to trust.
    rows = curve_rows(curves(lambda r: r / 100, lambda r: r / 100 * (1 + 0.01 * np.sign(r - 200)), spread=0.3),
                      baseline="base")
    found = crossovers(rows, "base")
    assert [(c.between, c.clear) for c in found] == [((192, 224), False)]
    assert "[within noise]" in found[0].describe()
    rows = curve_rows(curves(lambda r: 2 * r, lambda r: r), baseline="base")
    assert crossovers(rows, "base") == []


def test_crossovers_are_per_target():
    records = curves(lambda r: 4 + r * r / 20000, lambda r: 1 + r * r / 10000, target="onnx") \
        + curves(lambda r: 2 * r, lambda r: r, target="executorch")
    found = crossovers(curve_rows(records, "base"), "base")
    assert [c.setting[0] for c in found] == ["onnx"]


def test_rows_ratios_and_derived_columns():
    rows = curve_rows(curves(lambda r: 20.0, lambda r: 10.0), baseline="base")
    assert [r["model"] for r in rows[:2]] == ["base", "base"]          # the baseline first
    hybrid = [r for r in rows if r["model"] == "hybrid"]
    assert all(r["vs_baseline"] == pytest.approx(2.0, rel=0.03) for r in hybrid)
    r224 = next(r for r in hybrid if r["resolution"] == 224)
    assert r224["gmacs"] == pytest.approx(224**2 * 1000 / 1e9)
    assert r224["ms_per_gmac"] == pytest.approx(r224["latency_median_ms"] / r224["gmacs"], rel=1e-3)
    assert r224["peak_memory_mib"] == 30.0 and r224["artifact_mib"] == 1.0 and r224["params_m"] == 5.0


def test_latest_successful_record_wins_and_failures_are_kept():
    ok = record("m", 224, 10.0)
    later_failure = record("m", 224, 0, status="failed")
    retried = record("m", 224, 12.0)
    assert latest_by_case([ok, later_failure])[ok.case] is ok
    assert latest_by_case([later_failure, retried])[ok.case] is retried
    rows = curve_rows([record("m", 160, 0, status="failed")])
    assert rows[0]["status"] == "failed" and rows[0]["error"] == "boom" and rows[0]["latency_median_ms"] is None


def test_csv_has_every_column_and_row():
    rows = curve_rows(curves(lambda r: 5.0, lambda r: 4.0), baseline="base")
    parsed = list(csv.DictReader(io.StringIO(csv_text(rows))))
    assert list(parsed[0]) == list(COLUMNS) and len(parsed) == len(rows)
    assert float(parsed[-1]["latency_median_ms"]) == pytest.approx(5.0, rel=0.05)
