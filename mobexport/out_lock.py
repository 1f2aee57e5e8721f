"""One ``bench`` at a time per output directory, as git's index.lock does for a repository.

Two sweeps writing the same ``results.jsonl`` would time each other (both
load the CPU) and write duplicate records. The first run holds an exclusive
``fcntl.flock`` on ``OUT/.bench.lock`` for as long as it runs; the kernel
drops the lock when the process ends, however it ends (a SIGKILL included),
so a stale lock file never blocks anyone. The file holds the holder's
process id, for the message the second run prints.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from mobexport.errors import BenchmarkError

from .safe_files import write_failed

LOCK_NAME = ".bench.lock"


class OutputLockedError(BenchmarkError):
    """Another ``mobexport bench`` is writing to the same ``--out``."""


@contextmanager
def locked_out_dir(out_dir: Path) -> Iterator[Path]:
    """Hold the exclusive lock of ``out_dir`` (created if needed) for the block; refuse if another run has it."""
    path = Path(out_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise write_failed(path, exc, "lock file", "choose a writable --out") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise OutputLockedError(f"another mobexport bench (process {holder}) is writing to '{out_dir}'",
                                    "wait for it to finish, or choose another --out") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            raise write_failed(path, exc, "lock file", "free some space or choose another --out") from None
        yield path
    finally:
        os.close(fd)  # closing releases the lock
