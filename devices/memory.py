"""Resident memory of this process: current RSS, peak RSS, and a reset of the peak.

Peak memory of a case is "peak RSS above the runtime's idle baseline": the
worker imports the runtime, reads its RSS (the baseline), resets the kernel's
high-water mark (``echo 5 > /proc/self/clear_refs``, Linux >= 4.0), loads and
runs the model, then reads ``VmHWM``. Where ``/proc`` is missing (macOS) the
peak comes from ``getrusage`` and is a whole-process peak, which is said in
the record's conditions.
"""

from __future__ import annotations

import re
import resource
import sys
from pathlib import Path

STATUS = Path("/proc/self/status")


def status_kb(field: str, status_text: str | None = None) -> int | None:
    """A ``VmXXX:  1234 kB`` value of /proc/self/status (or of the given text)."""
    if status_text is None:
        try:
            status_text = STATUS.read_text()
        except OSError:
            return None
    match = re.search(rf"^{field}:\s*(\d+)\s*kB", status_text, re.MULTILINE)
    return int(match.group(1)) if match else None


def current_rss_bytes() -> int | None:
    kb = status_kb("VmRSS")
    return kb * 1024 if kb is not None else None


def reset_peak() -> bool:
    """Make VmHWM restart from the current RSS; False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> tuple[int, str]:
    """(peak resident bytes, where it came from)."""
    kb = status_kb("VmHWM")
    if kb is not None:
        return kb * 1024, "VmHWM"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (peak if sys.platform == "darwin" else peak * 1024), "getrusage"
