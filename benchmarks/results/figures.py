"""Writing plots: a PNG appears complete or not at all.

Every plot of mobexport is rendered to a temporary file beside its final
path and renamed into place, so an interrupted run never leaves a truncated
image that looks like a result.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mobexport.errors import OutputDirError


def save_png(fig: Figure, path: str | Path, dpi: int = 110, hint: str = "choose another output path") -> Path:
    """Render ``fig`` to ``path`` atomically; an unwritable place is a one-line :class:`OutputDirError`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".png")
        os.close(fd)
    except OSError as exc:
        raise OutputDirError(f"cannot write plot '{path}' ({exc.strerror or exc})", hint) from None
    try:
        if not isinstance(fig.canvas, FigureCanvasAgg):
            FigureCanvasAgg(fig)
        fig.savefig(tmp, dpi=dpi)
        os.chmod(tmp, 0o644)  # mkstemp made it private; a plot is for everyone
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None:  # a pyplot figure stays registered (and in memory) until closed
            pyplot.close(fig)
    return path


def device_caption(info: dict | None) -> str:
    """'local (AMD EPYC, 2 cores)': which machine a plot's numbers come from."""
    info = info or {}
    name = info.get("name") or "unknown device"
    details = [str(info[k]) for k in ("soc", "model", "cpu", "processor") if info.get(k)][:2]
    if info.get("cores"):
        details.append(f"{info['cores']} cores")
    if info.get("cpus"):
        details.append(f"pinned to cpus {info['cpus']}")
    return f"{name} ({', '.join(details)})" if details else str(name)


def threads_caption(threads: int | None) -> str:
    """'1 thread', '4 threads', or 'runtime-default threads' (0 or unknown)."""
    if not threads:
        return "runtime-default threads"
    return f"{threads} thread{'s' if threads != 1 else ''}"


def precision_caption(quantization: str | None) -> str:
    """What the weights and activations are: 'fp32' for an unquantized export, else the quantization."""
    return "fp32" if quantization in (None, "", "none") else str(quantization)
