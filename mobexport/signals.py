"""Termination signals end mobexport the way Ctrl-C does.

``kill PID`` (SIGTERM) and a closed terminal (SIGHUP) would otherwise end the
process at once, running no ``finally`` block: an export's staging directory
would stay behind. Raising :class:`Terminated` (a ``KeyboardInterrupt``) from
the handler unwinds the stack like Ctrl-C, so every cleanup that handles Ctrl-C
handles these too, and the CLI reports one line.
"""

from __future__ import annotations

import signal
import threading

HANDLED = ("SIGTERM", "SIGHUP")


class Terminated(KeyboardInterrupt):
    """The process got a termination signal; ``signum`` says which."""

    def __init__(self, signum: int):
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 143 for SIGTERM


def _raise_terminated(signum: int, frame) -> None:
    # A second signal during cleanup must not cut the cleanup short; the next run sweeps what is left.
    for name in HANDLED:
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    raise Terminated(signum)


def install() -> None:
    """Handle SIGTERM and SIGHUP like Ctrl-C (only possible from the main thread; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for name in HANDLED:
        signum = getattr(signal, name, None)
        if signum is not None and signal.getsignal(signum) in (signal.SIG_DFL, None):
            signal.signal(signum, _raise_terminated)
