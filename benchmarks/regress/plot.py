"""PNG plots for regression checks and trends (matplotlib, Agg, no display needed).

Comparison: one row per setting (target, quantization, ...). Left, the
compared value against resolution, baseline dashed and current solid, one
colour per model; right, the change of each point with its bootstrap
interval, the minimum-effect line, and regressed points marked. In relative
mode both panels show latency divided by the reference model's, which is what
the verdict is about. Trends: one panel per setting, one line per point
across runs.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator


from mobexport.benchmarks.results.curves import CurveId
from mobexport.benchmarks.results.figures import device_caption, precision_caption, save_png, threads_caption
from .history import History
from .verdict import PointComparison, RegressionReport, Status

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
RATIO_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.33, 0.5, 0.67, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2, 3, 5, 10, 20, 50,
               100)


def _setting_of(case) -> str:
    """The row's setting, its precision and threads: 'onnx · fp32 · runtime-default threads'."""
    return f"{CurveId.of(case).setting()} · {precision_caption(case.quantization)} · {threads_caption(case.threads)}"


def _devices(provenance: dict) -> str:
    devices = provenance.get("devices") or []
    return "; ".join(device_caption(d) for d in devices) or "unknown device"


def default_plot_path(results: Path, kind: str = "regress") -> Path:
    """A plot name of its own for every run, beside the results: ``regress-<results stem>-<UTC time>.png``.

    A fixed ``regress.png`` was overwritten by the next check; a CI job that
    wants a fixed name passes ``--plot``.
    """
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = Path(results).parent / f"{kind}-{Path(results).stem}-{stamp}.png"
    n = 1
    while path.exists():  # two checks within one second
        n += 1
        path = path.with_name(f"{kind}-{Path(results).stem}-{stamp}-{n}.png")
    return path




def _ticks(low: float, high: float, most: int = 9) -> list[float]:
    """Ratio ticks within [low, high], thinned to at most ``most`` that stay readable on a log axis (1 kept)."""
    import math

    inside = [t for t in RATIO_TICKS if low <= t <= high]
    gap = math.log(high / low) / most
    kept = [1.0] if low <= 1.0 <= high else []
    for t in sorted(inside, key=lambda t: abs(math.log(t))):
        if all(abs(math.log(t / k)) >= gap for k in kept):
            kept.append(t)
    return sorted(kept)


def plot_comparison(report: RegressionReport, path: Path) -> Path:
    compared = [p for p in report.points if p.ratio is not None and p.status is not Status.REFERENCE]
    if not compared:  # only the reference overlapped: show its machine-speed change instead
        compared = [p for p in report.points if p.ratio is not None]
    by_setting: dict[str, list[PointComparison]] = defaultdict(list)
    for p in compared:
        by_setting[_setting_of(p.case)].append(p)
    models = sorted({p.case.model for p in compared})
    colors = {m: f"C{i % 10}" for i, m in enumerate(models)}
    relative = report.settings.relative

    fig = Figure(figsize=(12, 4.2 * max(1, len(by_setting))), layout="constrained")
    axes = fig.subplots(max(1, len(by_setting)), 2, squeeze=False)
    for row, (setting, points) in enumerate(sorted(by_setting.items())):
        curve_ax, change_ax = axes[row]
        for i, model in enumerate(models):
            mine = sorted((p for p in points if p.case.model == model), key=lambda p: p.case.resolution)
            if not mine:
                continue
            res = [p.case.resolution for p in mine]
            marker = MARKERS[i % len(MARKERS)]
            curve_ax.plot(res, [p.baseline_value for p in mine], linestyle="--", marker=marker, color=colors[model],
                          alpha=0.6, label=f"{model} baseline")
            curve_ax.plot(res, [p.current_value for p in mine], linestyle="-", marker=marker, color=colors[model],
                          label=f"{model} current")
            ratios = [p.ratio for p in mine]
            errors = [[p.ratio - p.ci_low for p in mine], [p.ci_high - p.ratio for p in mine]]
            change_ax.errorbar(res, ratios, yerr=errors, marker=marker, color=colors[model], capsize=3, label=model)
            bad = [(p.case.resolution, p.ratio) for p in mine if p.status.fails_run]
            if bad:
                change_ax.scatter(*zip(*bad), s=160, facecolors="none", edgecolors="red", linewidths=2, zorder=5)
        threshold = 1 + report.settings.min_effect
        change_ax.set_yscale("log")
        change_ax.axhline(1, color="black", linewidth=0.8)
        change_ax.axhline(threshold, color="red", linestyle=":", linewidth=1,
                          label=f"+{report.settings.min_effect:.0%} min effect")
        change_ax.axhline(1 / threshold, color="green", linestyle=":", linewidth=1)
        # Estimates, intervals and thresholds always in view; an interval wider than 100x either way
        # is cut at the frame and its end marked with an arrow, so nothing leaves the axes unsaid.
        ends = [v for p in points for v in (p.ratio, p.ci_low, p.ci_high) if v is not None and v > 0]
        shown = ends + [threshold ** 2, threshold ** -2]
        low, high = max(min(shown) / 1.1, 0.01), min(max(shown) * 1.1, 100)
        change_ax.set_ylim(low, high)
        for p in points:
            for end, edge, mark in ((p.ci_low, low, "v"), (p.ci_high, high, "^")):
                if end is not None and (end < low or end > high):
                    change_ax.plot([p.case.resolution], [edge], marker=mark, color=colors[p.case.model],
                                   clip_on=False, zorder=6)
        change_ax.yaxis.set_major_locator(FixedLocator(_ticks(low, high)))
        change_ax.yaxis.set_minor_locator(NullLocator())
        change_ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y - 1:+.0%}"))
        ylabel = f"latency ÷ {report.settings.reference}" if relative else "median latency (ms)"
        curve_ax.set(title=f"{setting}: baseline (dashed) vs current (solid)", xlabel="resolution (px)", ylabel=ylabel)
        change_ax.set(title=f"{setting}: change vs baseline\n({report.point_confidence:.1%} interval; red ring = regressed)",
                      xlabel="resolution (px)", ylabel="change vs baseline (log scale)")
        for ax in (curve_ax, change_ax):
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    title = (f"mobexport regression check ({report.settings.mode} mode) on "
             f"{_devices(report.current_provenance)}")
    factor = report.machine_factor()
    if factor is not None:
        title += f"; the reference ran {factor:.2f}× its baseline latency (cancelled out)"
    fig.suptitle(title)
    return save_png(fig, path, hint="choose another path with --plot")


def plot_history(history: History, path: Path) -> Path:
    by_setting = defaultdict(list)
    for case in history.series:
        by_setting[_setting_of(case)].append(case)
    models = sorted({case.model for case in history.series})
    colors = {m: f"C{i % 10}" for i, m in enumerate(models)}
    resolutions = sorted({case.resolution for case in history.series})
    styles = {r: MARKERS[i % len(MARKERS)] for i, r in enumerate(resolutions)}

    x = list(range(1, len(history.runs) + 1))
    fig = Figure(figsize=(max(12, 1.2 * len(x) + 6), 4.5 * max(1, len(by_setting))), layout="constrained")
    axes = fig.subplots(max(1, len(by_setting)), 2, squeeze=False)
    ylabel = f"latency ÷ {history.reference}" if history.mode == "relative" else "median latency (ms)"
    labels = [run.measured_at[:10] for run in history.runs]
    for row, (setting, cases) in enumerate(sorted(by_setting.items())):
        value_ax, change_ax = axes[row]
        for case in cases:
            measured = [(i, v) for i, v in zip(x, history.series[case]) if v is not None]
            if not measured:
                continue
            style = dict(marker=styles[case.resolution], color=colors[case.model],
                         label=f"{case.model} @{case.resolution}")
            value_ax.plot([i for i, _ in measured], [v for _, v in measured], **style)
            first = measured[0][1]
            change_ax.plot([i for i, _ in measured], [100 * (v / first - 1) for _, v in measured], **style)
        change_ax.axhline(0, color="black", linewidth=0.8)
        value_ax.set(title=setting, xlabel="run (by measurement time)", ylabel=ylabel)
        change_ax.set(title=f"{setting}: change since its first run", xlabel="run (by measurement time)",
                      ylabel="change (%)")
        for ax in (value_ax, change_ax):
            ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=7)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, ncol=2)
    devices = sorted({d for run in history.runs for d in run.devices}) or ["unknown device"]
    fig.suptitle(f"mobexport trends over {len(history.runs)} runs ({history.mode} mode) on {', '.join(devices)}")
    return save_png(fig, path, hint="choose another path with --plot")
