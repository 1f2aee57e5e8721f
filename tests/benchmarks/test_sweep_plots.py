"""The four PNGs, drawn from rows with and without a crossover."""

from __future__ import annotations

from mobexport.benchmarks.curve_table import curve_rows
from mobexport.benchmarks.sweep_plots import plot_sweep

from .test_curve_table import curves


def test_plots_are_written_per_metric(tmp_path):
    records = curves(lambda r: 4 + r * r / 20000, lambda r: 1 + r * r / 10000) \
        + curves(lambda r: 3 + r * r / 20000, lambda r: 1 + r * r / 10000, target="executorch")
    paths = plot_sweep(curve_rows(records, "base"), tmp_path, "base", "test")
    assert sorted(p.name for p in paths) == ["latency_per_mac.png", "latency_vs_resolution.png",
                                              "macs_vs_resolution.png", "throughput_vs_resolution.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    assert not list(tmp_path.glob(".*"))                      # no temporary files left


def test_nothing_measured_draws_nothing(tmp_path):
    assert plot_sweep([], tmp_path, None) == []
