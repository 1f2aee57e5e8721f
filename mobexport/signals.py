"""Process-level endings: termination signals end mobexport the way Ctrl-C does; running out of memory is one line.

``kill PID`` (SIGTERM) and a closed terminal (SIGHUP) would otherwise end the
process at once, running no ``finally`` block: an export's staging directory
would stay behind. Raising :class:`Terminated` (a ``KeyboardInterrupt``) from
the handler unwinds the stack like Ctrl-C, so every cleanup that handles Ctrl-C
handles these too, and the CLI reports one line.

Memory can run out anywhere, even while Python imports a module before any
command code runs, and again in a library's exit hook after the error was
reported. A ``MemoryError`` that reaches the top is one line (exit 1), and one
raised in an exit hook is not reported a second time.
"""

from __future__ import annotations

import signal
import sys
import threading

HANDLED = ("SIGTERM", "SIGHUP")
OUT_OF_MEMORY = ("error: mobexport ran out of memory; nothing was written "
                 "(free memory or raise the address-space limit, ulimit -v)")


class Terminated(KeyboardInterrupt):
    """The process got a termination signal; ``signum`` says which."""

    def __init__(self, signum: int):
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 143 for SIGTERM


def raise_terminated(signum: int, frame) -> None:
    """The handler: unwind like Ctrl-C, with the signal's exit status (143 for SIGTERM)."""
    # A second signal during cleanup must not cut the cleanup short; the next run sweeps what is left.
    for name in HANDLED:
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    raise Terminated(signum)


def _excepthook(kind, value, traceback) -> None:
    if issubclass(kind, MemoryError) and "--debug" not in sys.argv:
        print(OUT_OF_MEMORY, file=sys.stderr)
        return
    sys.__excepthook__(kind, value, traceback)


def _unraisablehook(unraisable) -> None:
    if isinstance(unraisable.exc_value, MemoryError):
        return  # an exit hook short of memory after the error that mattered was reported
    sys.__unraisablehook__(unraisable)


def install() -> None:
    """Handle SIGTERM/SIGHUP like Ctrl-C and report a top-level ``MemoryError`` in one line.

    Signal handlers can only be set from the main thread; elsewhere that part is a no-op.
    """
    sys.excepthook = _excepthook
    sys.unraisablehook = _unraisablehook
    if threading.current_thread() is not threading.main_thread():
        return
    for name in HANDLED:
        signum = getattr(signal, name, None)
        if signum is not None and signal.getsignal(signum) in (signal.SIG_DFL, None):
            signal.signal(signum, raise_terminated)
