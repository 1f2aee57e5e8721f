"""Training curves of fixtures as a PNG (matplotlib, Agg): did it learn, and how steadily.

Left: held-out top-1 per epoch (epoch 0 is the untrained model), with the 90%
line the fixtures are meant to pass. Right: training loss (solid) and held-out
loss (dashed) per epoch. One colour per model.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from .figures import save_png

TARGET_TOP1 = 0.90


def plot_training(metas: list[dict], path: str | Path) -> Path:
    """Plot the ``history`` of each fixture ``meta`` into ``path`` (written atomically)."""
    fig = Figure(figsize=(10, 4))
    acc_ax, loss_ax = fig.subplots(1, 2)
    for i, meta in enumerate(metas):
        colour = f"C{i}"
        rows = meta["history"]
        label = f"{meta['model']} @ {meta['resolution']} px"
        acc_ax.plot([r["epoch"] for r in rows], [100 * r["heldout_top1"] for r in rows], "o-", color=colour,
                    label=label)
        trained = [r for r in rows if r["train_loss"] is not None]
        loss_ax.plot([r["epoch"] for r in trained], [r["train_loss"] for r in trained], "-", color=colour,
                     label=f"{meta['model']} train")
        loss_ax.plot([r["epoch"] for r in rows], [r["heldout_loss"] for r in rows], "--", color=colour,
                     label=f"{meta['model']} held-out")
    acc_ax.axhline(100 * TARGET_TOP1, color="grey", linewidth=0.8, linestyle=":")
    acc_ax.set(xlabel="epoch", ylabel="held-out top-1 (%)", ylim=(0, 100), title="Synthetic Shapes accuracy")
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy", title="loss (train with label smoothing)")
    acc_ax.legend(loc="lower right", fontsize=8)
    loss_ax.legend(loc="upper right", fontsize=8)
    for ax in (acc_ax, loss_ax):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_png(fig, path, hint="choose another path with --plot")
