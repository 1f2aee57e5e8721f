"""The rich consoles every command prints through.

A terminal gets its own width. A pipe, a file or a CI log has no width: rich
would assume 80 columns and wrap or truncate table cells, so there the
console is wide (``COLUMNS`` if set, else :data:`PIPE_WIDTH`) and tables keep
one line per row, whole (``mobexport list | cat``, ``inspect > file``).
"""

from __future__ import annotations

import os
import sys

from rich.console import Console

PIPE_WIDTH = 240


def _width_for(stream) -> int | None:
    """None (rich decides) on a terminal; a wide fixed width otherwise."""
    try:
        if stream.isatty():
            return None
    except (AttributeError, ValueError):
        pass
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else PIPE_WIDTH


def _sized(width: int | None, **kwargs) -> Console:
    # A fixed width needs a fixed height too: with only a width, rich still answers 80 columns
    # whenever it takes the stream for a dumb terminal (TERM=dumb with FORCE_COLOR set).
    return Console(width=width, height=None if width is None else 25, **kwargs)


def stdout_console() -> Console:
    """Results: tables, summaries, JSON."""
    return _sized(_width_for(sys.stdout))


def stderr_console() -> Console:
    """Progress, logs and error lines."""
    return _sized(_width_for(sys.stderr), stderr=True)
