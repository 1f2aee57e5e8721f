"""The PNGs of a sweep, the ones people look for first.

* ``latency_vs_resolution.png``: median latency with its bootstrap 95% CI;
* ``vs_baseline_vs_resolution.png``: latency ÷ the baseline's (MobileNetV3)
  at each resolution, with a bootstrap interval of that ratio from the raw
  samples. Below 1 the model is faster: where a curve crosses 1 is the
  crossover question;
* ``latency_vs_gmacs.png``: latency against GMACs, log-log, one line per
  model and setting, points labelled by resolution: how far the MACs predict
  the latency;
* ``macs_vs_resolution.png`` and ``latency_per_mac.png`` (ms/GMAC).

One panel per setting (target, quantization, passes, device, batch,
threads), the baseline black and dashed; where a model's curve crosses the
baseline's, a dotted vertical line and the interpolated crossing resolution.
Every title names the device, the threads and the precision. Throughput at
batch 1 is 1000 / latency and gets no plot of its own.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Iterable

import numpy as np

from mobexport.shapes import side

from mobexport.benchmarks.results.change_intervals import bootstrap_ratio_of_medians
from mobexport.benchmarks.results.curves import METRICS, crossovers, latest_by_case, setting_key, setting_label
from mobexport.benchmarks.results.figures import device_caption, precision_caption, save_png, threads_caption
from mobexport.benchmarks.results.records import BenchRecord
from mobexport.benchmarks.results.stats import BOOTSTRAP_SEED

# metric column -> file name of its plot against resolution
RESOLUTION_PLOTS = {
    "latency_median_ms": "latency_vs_resolution.png",
    "gmacs": "macs_vs_resolution.png",
    "ms_per_gmac": "latency_per_mac.png",
}
RATIO_PLOT = "vs_baseline_vs_resolution.png"
GMACS_PLOT = "latency_vs_gmacs.png"
PLOT_FILES = (*RESOLUTION_PLOTS.values(), RATIO_PLOT, GMACS_PLOT)
COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink",
          "tab:olive", "tab:cyan", "tab:gray")


def setting_caption(setting: tuple) -> str:
    """A panel's title: the setting, its precision and its threads ('onnx · fp32 · 1 thread')."""
    _target, quantization, _passes, _device, _batch, threads = setting
    return f"{setting_label(setting)} · {precision_caption(quantization)} · {threads_caption(threads)}"


def common_caption(settings: Iterable[tuple]) -> str:
    """Precision and threads shared by ``settings`` ('fp32 · 1 thread'); 'mixed' parts are in the legend."""
    settings = list(settings)
    precisions = {precision_caption(s[1]) for s in settings}
    threads = {threads_caption(s[5]) for s in settings}
    return " · ".join(next(iter(v)) if len(v) == 1 else f"{what} per curve (legend)"
                      for v, what in ((precisions, "precision"), (threads, "threads")))


def plot_sweep(rows: list[dict], out_dir: Path, baseline: str | None, title: str = "", *,
               records: Iterable[BenchRecord] | None = None, device_info: dict | None = None) -> list[Path]:
    """Write the PNGs for the ``ok`` rows; returns their paths (none if nothing was measured).

    ``records`` (the raw samples) give the intervals of the ratio to the
    baseline; without them that plot shows the ratio of medians alone.
    ``device_info`` is a record's device fingerprint, named in every title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        return []
    heading = f"{title}: " if title else ""
    on = f"on {device_caption(device_info)}"
    written = []
    for metric, file_name in RESOLUTION_PLOTS.items():
        data = [r for r in ok if r.get(metric) is not None]
        if not data:
            continue
        if metric == "gmacs":  # the graph's arithmetic: the same for every target
            first = sorted({setting_key(r) for r in data})[0]
            data = [r for r in data if setting_key(r) == first]
        settings = sorted({setting_key(r) for r in data})
        fig, axes = plt.subplots(1, len(settings), figsize=(6.4 * len(settings), 4.8), squeeze=False)
        label = METRICS[metric]
        for ax, setting in zip(axes[0], settings):
            _panel(ax, [r for r in data if setting_key(r) == setting], metric, label, baseline,
                   "all targets (MACs do not depend on them)" if metric == "gmacs" else setting_caption(setting))
        fig.suptitle(f"{heading}{label} vs input resolution" + ("" if metric == "gmacs" else f"\n{on}"))
        fig.tight_layout()
        written.append(save_png(fig, Path(out_dir) / file_name, dpi=120, hint="choose another --out"))
    if baseline and any(r["model"] != baseline for r in ok):
        path = _plot_ratio(ok, list(records or []), baseline, Path(out_dir) / RATIO_PLOT, f"{heading}", on)
        if path is not None:
            written.append(path)
    if any(r.get("gmacs") for r in ok):
        written.append(_plot_latency_vs_gmacs(ok, baseline, Path(out_dir) / GMACS_PLOT, heading, on))
    return written


def set_resolution_axis(ax, resolutions: list) -> None:
    """Ticks at each swept size, labelled as given (224, 256x320); an HxW size sits at sqrt(H*W)."""
    ax.set_xticks([side(r) for r in resolutions])
    ax.set_xticklabels([str(r) for r in resolutions])
    ax.tick_params(axis="x", labelrotation=45 if len(resolutions) > 6 else 0)
    square = all(isinstance(r, int) for r in resolutions)
    ax.set_xlabel("input resolution (px, square)" if square else "input resolution (px; HxW at sqrt(H*W))")


def _panel(ax, rows: list[dict], metric: str, label: str, baseline: str | None, subtitle: str) -> None:
    models = sorted({r["model"] for r in rows}, key=lambda m: (m != baseline, m))
    colors = iter(COLORS)
    resolutions = sorted({r["resolution"] for r in rows}, key=side)
    for model in models:
        points = sorted((r for r in rows if r["model"] == model), key=lambda r: side(r["resolution"]))
        xs = [side(r["resolution"]) for r in points]
        ys = [r[metric] for r in points]
        is_base = model == baseline
        style = dict(color="black", linestyle="--", marker="s", linewidth=2) if is_base else \
            dict(color=next(colors), linestyle="-", marker="o", linewidth=1.8)
        name = f"{model} (baseline)" if is_base else model
        if metric == "latency_median_ms" and all(r.get("ci95_low_ms") is not None for r in points):
            low = [y - r["ci95_low_ms"] for y, r in zip(ys, points)]
            high = [r["ci95_high_ms"] - y for y, r in zip(ys, points)]
            ax.errorbar(xs, ys, yerr=[low, high], capsize=3, label=name, **style)
        else:
            ax.plot(xs, ys, label=name, **style)
    if baseline:
        top = ax.get_ylim()[1]
        for cross in crossovers(rows, baseline, metric):
            ax.axvline(cross.at, color="tab:red", linestyle=":", linewidth=1.5)
            ax.annotate(f"{cross.model}\ncrosses at ~{cross.at:.0f} px", xy=(cross.at, top), xytext=(4, -4),
                        textcoords="offset points", va="top", fontsize=8, color="tab:red")
    set_resolution_axis(ax, resolutions)
    ax.set_ylabel(label)
    ax.set_title(subtitle, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")


def ratio_points(rows: list[dict], records: list[BenchRecord], baseline: str) -> list[dict]:
    """Latency ÷ baseline's per (setting, model, resolution), with a bootstrap 95% interval
    of the ratio of medians when both raw sample sets are there (else ``low``/``high`` None)."""
    samples = {(setting_key(_row_key(r)), r.case.model, r.case.resolution): np.asarray(r.samples_ms, float)
               for r in latest_by_case(records).values() if r.status == "ok" and r.samples_ms}
    base = {(setting_key(r), r["resolution"]): r for r in rows if r["model"] == baseline}
    points = []
    for r in rows:
        reference = base.get((setting_key(r), r["resolution"]))
        if r["model"] == baseline or reference is None or not reference["latency_median_ms"]:
            continue
        point = {"setting": setting_key(r), "model": r["model"], "resolution": r["resolution"],
                 "ratio": r["latency_median_ms"] / reference["latency_median_ms"], "low": None, "high": None}
        mine = samples.get((setting_key(r), r["model"], r["resolution"]))
        theirs = samples.get((setting_key(r), baseline, r["resolution"]))
        if mine is not None and theirs is not None and mine.size and theirs.size:
            # seeded from the point's identity: the same files always draw the same interval
            seed = zlib.crc32(f"{point['setting']}/{r['model']}/{r['resolution']}".encode()) ^ BOOTSTRAP_SEED
            point["ratio"], point["low"], point["high"] = bootstrap_ratio_of_medians(
                mine, theirs, np.random.default_rng(seed))
        points.append(point)
    return points


def ratio_crossings(resolutions: list[int], ratios: list[float]) -> list[float]:
    """Resolutions where a ratio curve crosses 1, interpolated linearly between neighbours."""
    found = []
    for (r1, y1), (r2, y2) in zip(zip(resolutions, ratios), zip(resolutions[1:], ratios[1:])):
        if (y1 - 1) * (y2 - 1) < 0:
            found.append(r1 + (r2 - r1) * (y1 - 1) / (y1 - y2))
    return found


def _row_key(record: BenchRecord) -> dict:
    c = record.case
    return {"target": c.target, "quantization": c.quantization, "passes": c.passes, "device": c.device,
            "batch": c.batch, "threads": c.threads}


def _plot_ratio(rows: list[dict], records: list[BenchRecord], baseline: str, path: Path, heading: str,
                on: str) -> Path | None:
    import matplotlib.pyplot as plt

    points = ratio_points(rows, records, baseline)
    if not points:
        return None
    settings = sorted({p["setting"] for p in points})
    fig, axes = plt.subplots(1, len(settings), figsize=(6.4 * len(settings), 4.8), squeeze=False)
    for ax, setting in zip(axes[0], settings):
        mine = [p for p in points if p["setting"] == setting]
        for model, color in zip(sorted({p["model"] for p in mine}), COLORS):
            curve = sorted((p for p in mine if p["model"] == model), key=lambda p: side(p["resolution"]))
            xs, ys = [side(p["resolution"]) for p in curve], [p["ratio"] for p in curve]
            if all(p["low"] is not None for p in curve):
                errors = [[p["ratio"] - p["low"] for p in curve], [p["high"] - p["ratio"] for p in curve]]
                ax.errorbar(xs, ys, yerr=errors, capsize=3, marker="o", color=color,
                            label=f"{model} (95% bootstrap interval)")
            else:
                ax.plot(xs, ys, marker="o", color=color, label=f"{model} (no samples: no interval)")
            for at in ratio_crossings(xs, ys):
                ax.axvline(at, color=color, linestyle=":", linewidth=1.2)
                ax.annotate(f"crosses 1 at ~{at:.0f} px", xy=(at, 1.0), xytext=(4, 6), textcoords="offset points",
                            fontsize=8, color=color)
        ax.axhline(1.0, color="black", linestyle="--", linewidth=1.2, label=f"{baseline} (= 1)")
        low = min([p["low"] or p["ratio"] for p in mine] + [1.0])
        high = max([p["high"] or p["ratio"] for p in mine] + [1.0])
        pad = 0.06 * (high - low or 1.0)
        ax.set_ylim(max(0.0, low - pad), high + pad)
        set_resolution_axis(ax, sorted({p["resolution"] for p in mine}, key=side))
        ax.set(ylabel=f"latency ÷ {baseline}'s (below 1: faster)")
        ax.set_title(setting_caption(setting), fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(f"{heading}latency × {baseline} vs input resolution (crossover where a curve meets 1)\n{on}")
    fig.tight_layout()
    return save_png(fig, path, dpi=120, hint="choose another --out")


def _plot_latency_vs_gmacs(rows: list[dict], baseline: str | None, path: Path, heading: str, on: str) -> Path:
    import matplotlib.pyplot as plt

    data = [r for r in rows if r.get("gmacs") and r.get("latency_median_ms")]
    fig, ax = plt.subplots(figsize=(8.5, 6))
    curves = sorted({(r["model"], setting_key(r)) for r in data}, key=lambda c: (c[0] != baseline, c))
    markers = ("o", "s", "^", "D", "v", "P", "X", "*")
    settings = sorted({s for _, s in curves})
    models = sorted({m for m, _ in curves}, key=lambda m: (m != baseline, m))
    for model, setting in curves:
        points = sorted((r for r in data if r["model"] == model and setting_key(r) == setting),
                        key=lambda r: side(r["resolution"]))
        xs, ys = [r["gmacs"] for r in points], [r["latency_median_ms"] for r in points]
        color = "black" if model == baseline else COLORS[models.index(model) % len(COLORS)]
        ax.plot(xs, ys, marker=markers[settings.index(setting) % len(markers)], color=color,
                linestyle="--" if model == baseline else "-", label=f"{model} · {setting_caption(setting)}")
        for x, y, r in zip(xs, ys, points):
            ax.annotate(str(r["resolution"]), (x, y), xytext=(3, 3), textcoords="offset points", fontsize=7,
                        color=color)
    from matplotlib.ticker import FuncFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")  # 0.05, 6 rather than 5×10⁻², 6×10⁰
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(plain)
    ax.tick_params(which="minor", labelsize=7)
    ax.set(xlabel="GMACs per image (log)", ylabel="latency, median (ms, log)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(f"{heading}latency vs GMACs, points labelled by input resolution\n{on} · {common_caption(settings)}",
                 fontsize=10)
    fig.tight_layout()
    return save_png(fig, path, dpi=120, hint="choose another --out")
