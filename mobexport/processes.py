"""Whether a process that left something behind (a staging directory, a case directory) still runs."""

from __future__ import annotations

import errno
import os


def is_alive(pid: int) -> bool:
    """True while ``pid`` exists, also when it belongs to another user (we may not signal it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError as exc:
        return exc.errno != errno.ESRCH
    return True
