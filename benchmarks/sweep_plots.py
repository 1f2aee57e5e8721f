"""The four PNGs of a sweep: latency, throughput, MACs and latency per MAC against resolution.

One panel per setting (target...), every model a line, the baseline black and
dashed; where a model's curve crosses the baseline's, a dotted vertical line
and the interpolated crossing resolution. Latency panels show the bootstrap
95% confidence interval of each median as error bars.
"""

from __future__ import annotations

from pathlib import Path

from .curve_table import METRICS, crossovers, setting_key, setting_label
from .figures import save_png


def plot_sweep(rows: list[dict], out_dir: Path, baseline: str | None, title: str = "") -> list[Path]:
    """Write the PNGs for the ``ok`` rows; returns their paths (none if nothing was measured)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        return []
    written = []
    for metric, (label, file_name) in METRICS.items():
        data = [r for r in ok if r.get(metric) is not None]
        if not data:
            continue
        if metric == "gmacs":  # the graph's arithmetic: the same for every target
            first = sorted({setting_key(r) for r in data})[0]
            data = [r for r in data if setting_key(r) == first]
        settings = sorted({setting_key(r) for r in data})
        fig, axes = plt.subplots(1, len(settings), figsize=(6.4 * len(settings), 4.8), squeeze=False)
        for ax, setting in zip(axes[0], settings):
            _panel(ax, [r for r in data if setting_key(r) == setting], metric, label, baseline,
                   "all targets" if metric == "gmacs" else setting_label(setting))
        fig.suptitle(f"{title}: {label} vs input resolution" if title else f"{label} vs input resolution")
        fig.tight_layout()
        written.append(save_png(fig, Path(out_dir) / file_name, dpi=120, hint="choose another --out"))
    return written


def _panel(ax, rows: list[dict], metric: str, label: str, baseline: str | None, subtitle: str) -> None:
    models = sorted({r["model"] for r in rows}, key=lambda m: (m != baseline, m))
    colors = iter(["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink",
                   "tab:olive", "tab:cyan", "tab:gray"])
    resolutions = sorted({r["resolution"] for r in rows})
    for model in models:
        points = sorted((r for r in rows if r["model"] == model), key=lambda r: r["resolution"])
        xs = [r["resolution"] for r in points]
        ys = [r[metric] for r in points]
        is_base = model == baseline
        style = dict(color="black", linestyle="--", marker="s", linewidth=2) if is_base else \
            dict(color=next(colors), linestyle="-", marker="o", linewidth=1.8)
        name = f"{model} (baseline)" if is_base else model
        if metric == "latency_median_ms":
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
    ax.set_xticks(resolutions)
    ax.tick_params(axis="x", labelrotation=45 if len(resolutions) > 6 else 0)
    ax.set_xlabel("input resolution (px, square)")
    ax.set_ylabel(label)
    ax.set_title(subtitle)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
