"""Telling "a resource ran out" apart from other failures, so the user gets one line naming it.

Memory, disk space and the file-size limit can run out anywhere in an export,
inside torch or a converter as often as in mobexport: the exception may be a
``MemoryError``, an ``OSError`` with ``ENOSPC``/``EDQUOT``/``EFBIG``, or a
library's ``RuntimeError`` that carries the C library's message.
"""

from __future__ import annotations

import errno

from mobexport.errors import ResourceExhaustedError

_ERRNO_TEXT = {
    errno.ENOSPC: "disk space",
    errno.EDQUOT: "disk quota",
    errno.EFBIG: "the file-size limit",
}
_MESSAGE_TEXT = {
    "no space left on device": "disk space",
    "disk quota exceeded": "disk quota",
    "file too large": "the file-size limit",
    "std::bad_alloc": "memory",
    "can't allocate memory": "memory",
    "cannot allocate memory": "memory",
    "out of memory": "memory",
}


def exhausted_resource(exc: BaseException) -> str | None:
    """Which resource ``exc`` (or an exception it was raised from) says ran out, or None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, MemoryError):
            return "memory"
        if isinstance(current, OSError) and current.errno in _ERRNO_TEXT:
            return _ERRNO_TEXT[current.errno]
        text = str(current).lower()
        for fragment, resource in _MESSAGE_TEXT.items():
            if fragment in text:
                return resource
        current = current.__cause__ or current.__context__
    return None


def as_resource_error(exc: BaseException, doing: str) -> ResourceExhaustedError | None:
    """A one-line error for ``exc`` if it is resource exhaustion while ``doing``, else None."""
    resource = exhausted_resource(exc)
    if resource is None:
        return None
    hint = {
        "memory": "free memory, raise the address-space limit (ulimit -v), or export a smaller model or resolution",
        "disk space": "free space on the output file system or choose another --out",
        "disk quota": "free space within your quota or choose another --out",
        "the file-size limit": "raise the file-size limit (ulimit -f)",
    }[resource]
    return ResourceExhaustedError(f"{doing} ran out of {resource}; nothing was written", hint)
