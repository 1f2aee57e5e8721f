"""Regress report and plot formatting, from hand-written verdicts (no export, no timing)."""

from __future__ import annotations

import re

import pytest

from mobexport.benchmarks.regress import plot as regress_plot
from mobexport.benchmarks.results.records import CaseKey
from mobexport.benchmarks.regress.report import comparison_markdown
from mobexport.benchmarks.regress.verdict import PointComparison, RegressionReport, RegressionSettings, Status

PROVENANCE = {"devices": [{"name": "local", "cpu": "AMD EPYC", "cores": 2}]}


def point(model, resolution, ratio, low, high, status=Status.UNCHANGED, threads=1):
    return PointComparison(case=CaseKey(model=model, target="onnx", resolution=resolution, threads=threads),
                           status=status, baseline_ms=5.0, current_ms=5.0 * ratio, baseline_value=2.0,
                           current_value=2.0 * ratio, ratio=ratio, ci_low=low, ci_high=high)


def report(points):
    return RegressionReport(settings=RegressionSettings(), points=points, baseline_provenance=PROVENANCE,
                            current_provenance=PROVENANCE)


def test_interval_column_is_a_percent_change_on_every_row():
    # A narrow and a wide interval: the old report printed one as +x%…+y% and the other as a×…b×.
    text = comparison_markdown(report([point("a", 160, 1.02, 0.98, 1.06), point("b", 160, 1.5, 0.3, 7.0,
                                                                              Status.INCONCLUSIVE)]), "base.json",
                               "results.jsonl")
    rows = [line for line in text.splitlines() if line.startswith("| ✅") or line.startswith("| ⚠️")]
    assert len(rows) == 2
    intervals = [row.split(" | ")[7] for row in rows]
    assert intervals == ["-2.0%…+6.0%", "-70.0%…+600.0%"]
    assert "×…" not in text and "change interval" in text


def test_regress_plot_keeps_every_interval_inside_the_axes(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(regress_plot, "save_png", lambda fig, path, **kw: figures.append(fig) or path)
    points = [point("a", 160, 1.3, 0.05, 25.0, Status.INCONCLUSIVE), point("a", 192, 1.0, 0.97, 1.03),
              point("b", 160, 0.9, 0.85, 0.95), point("b", 192, 1.1, 1.05, 1.15)]
    regress_plot.plot_comparison(report(points), tmp_path / "x.png")
    fig = figures[0]
    change_ax = fig.axes[1]
    low, high = change_ax.get_ylim()
    assert low <= 0.05 and high >= 25.0                       # was cut at 0.1x…10x and ran off the frame
    assert "AMD EPYC" in fig._suptitle.get_text()
    assert "fp32" in change_ax.get_title() and "1 thread" in change_ax.get_title()


def test_an_interval_beyond_100x_is_cut_and_marked_at_the_frame(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(regress_plot, "save_png", lambda fig, path, **kw: figures.append(fig) or path)
    regress_plot.plot_comparison(report([point("a", 160, 2.0, 0.001, 500.0, Status.INCONCLUSIVE)]),
                                 tmp_path / "x.png")
    change_ax = figures[0].axes[1]
    assert change_ax.get_ylim() == pytest.approx((0.01, 100))
    markers = {line.get_marker() for line in change_ax.get_lines()}
    assert {"^", "v"} <= markers


def test_default_plot_name_is_per_run(tmp_path):
    path = regress_plot.default_plot_path(tmp_path / "results.jsonl")
    assert path.parent == tmp_path and re.fullmatch(r"regress-results-\d{8}T\d{6}Z\.png", path.name)


def test_two_checks_in_one_second_get_two_names(tmp_path):
    first = regress_plot.default_plot_path(tmp_path / "results.jsonl")
    first.write_bytes(b"png")
    second = regress_plot.default_plot_path(tmp_path / "results.jsonl")
    assert second != first and not second.exists()
