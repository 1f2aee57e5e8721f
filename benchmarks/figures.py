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
