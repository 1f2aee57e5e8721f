"""The sweep's PNGs, drawn from hand-written records with and without a crossover."""

from __future__ import annotations

import pytest

from mobexport.benchmarks.results.curves import METRICS, curve_rows
from mobexport.benchmarks.results.figures import device_caption, precision_caption, threads_caption
from mobexport.benchmarks.results.records import BenchRecord, CaseKey
from mobexport.benchmarks.sweep.plots import (
    PLOT_FILES, common_caption, plot_sweep, ratio_crossings, ratio_points, setting_caption)

from ..results.test_curves import curves

DEVICE = {"name": "local", "cpu": "AMD EPYC", "cores": 2}


def sweep_records():
    return (curves(lambda r: 4 + r * r / 20000, lambda r: 1 + r * r / 10000)
            + curves(lambda r: 3 + r * r / 20000, lambda r: 1 + r * r / 10000, target="executorch"))


def test_plots_are_written_per_metric_and_throughput_is_not_plotted(tmp_path):
    records = sweep_records()
    paths = plot_sweep(curve_rows(records, "base"), tmp_path, "base", "test", records=records, device_info=DEVICE)
    assert sorted(p.name for p in paths) == sorted(PLOT_FILES) == [
        "latency_per_mac.png", "latency_vs_gmacs.png", "latency_vs_resolution.png", "macs_vs_resolution.png",
        "vs_baseline_vs_resolution.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    assert not list(tmp_path.glob(".*"))                      # no temporary files left
    assert not (tmp_path / "throughput_vs_resolution.png").exists()


def test_titles_name_device_threads_and_precision(tmp_path, monkeypatch):
    titles = []
    from matplotlib.figure import Figure

    original = Figure.savefig

    def capture(fig, *args, **kwargs):
        texts = [fig._suptitle.get_text() if fig._suptitle else ""] + [ax.get_title() for ax in fig.axes]
        titles.append("\n".join(texts) + "\n" + "\n".join(ax.get_ylabel() for ax in fig.axes))
        return original(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", capture)
    records = [BenchRecord(**{**vars(r), "case": CaseKey(**{**vars(r.case), "threads": 1})})
               for r in sweep_records()]
    plot_sweep(curve_rows(records, "base"), tmp_path, "base", records=records, device_info=DEVICE)
    assert len(titles) == 5
    for title in titles:
        assert "AMD EPYC" in title or "MACs (G) vs input resolution" in title
        if "MACs (G) vs" not in title:
            assert "1 thread" in title and "fp32" in title, title
    per_mac = next(t for t in titles if "latency per GMAC" in t)
    assert "ms/GMAC" in per_mac


def test_captions():
    assert device_caption(DEVICE) == "local (AMD EPYC, 2 cores)"
    assert device_caption({}) == "unknown device"
    assert threads_caption(0) == "runtime-default threads" and threads_caption(1) == "1 thread"
    assert threads_caption(4) == "4 threads"
    assert precision_caption("none") == "fp32" and precision_caption("int8") == "int8"
    assert setting_caption(("onnx", "int8", "default", "local", 1, 2)) == "onnx/int8 t2 · int8 · 2 threads"
    assert METRICS["ms_per_gmac"].endswith("(ms/GMAC)")
    assert common_caption([("onnx", "none", "default", "local", 1, 1)] * 2) == "fp32 · 1 thread"
    assert common_caption([("onnx", "none", "default", "local", 1, 1), ("onnx", "int8", "default", "local", 1, 1)]) \
        == "precision per curve (legend) · 1 thread"


def test_ratio_to_the_baseline_has_an_interval_from_the_samples():
    records = curves(lambda r: 2.0, lambda r: 1.0, spread=0.02)
    points = ratio_points(curve_rows(records, "base"), records, "base")
    assert len(points) == 6 and {p["model"] for p in points} == {"hybrid"}
    for p in points:
        assert p["ratio"] == pytest.approx(2.0, rel=0.03)
        assert p["low"] < p["ratio"] < p["high"] and p["high"] / p["low"] < 1.1
    again = ratio_points(curve_rows(records, "base"), records, "base")
    assert again == points                                    # seeded: the same files draw the same interval
    without_samples = ratio_points(curve_rows(records, "base"), [], "base")
    assert all(p["low"] is None and p["high"] is None for p in without_samples)


def test_nothing_measured_draws_nothing(tmp_path):
    assert plot_sweep([], tmp_path, None) == []


def test_ratio_crossings_are_interpolated():
    assert ratio_crossings([128, 160, 192], [1.5, 1.1, 0.9]) == [pytest.approx(176.0)]
    assert ratio_crossings([128, 160], [2.0, 1.5]) == []
