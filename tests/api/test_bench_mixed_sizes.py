"""A sweep over a mixed list of square and HxW sizes, on a user model: records, curves and plots."""

from __future__ import annotations

import csv

import mobexport
from mobexport.benchmarks.sweep.cli import CSV_NAME, SUMMARY_NAME
from mobexport.benchmarks.results.curves import crossovers
from mobexport.shapes import side

from .conftest import reference


def test_bench_sweep_with_square_and_rectangular_sizes(tmp_path):
    out = tmp_path / "bench"
    records = mobexport.bench([reference("plain_cnn")], ["onnx"], [32, "32x48", 48], out=out,
                              min_time=0.01, min_iters=3, max_iters=3, warmup_time=0)
    assert sorted(str(r.case.resolution) for r in records) == ["32", "32x48", "48"]
    assert all(r.status == "ok" for r in records), [r.error for r in records]
    assert all(r.macs for r in records)
    rows = list(csv.DictReader((out / CSV_NAME).open()))
    assert [row["resolution"] for row in rows] == ["32", "32x48", "48"]  # ordered by sqrt(H*W)
    assert (out / SUMMARY_NAME).is_file()
    assert (out / "latency_vs_resolution.png").stat().st_size > 0


def test_sizes_order_and_cross_on_the_pixel_axis():
    assert sorted([48, "32x48", 32], key=side) == [32, "32x48", 48]
    rows = [{"model": m, "resolution": r, "status": "ok", "latency_median_ms": ms, "target": "onnx",
             "quantization": "none", "passes": "default", "device": "local", "batch": 1, "threads": 0,
             "ci95_low_ms": ms, "ci95_high_ms": ms}
            for m, r, ms in [("a", 32, 1.0), ("a", "32x48", 2.0), ("b", 32, 2.0), ("b", "32x48", 1.0)]]
    (cross,) = crossovers(rows, "b")
    assert cross.between == (32, "32x48") and 32 < cross.at < side("32x48")
