"""The ``sync:`` service (AOSP ``adb/SYNC.TXT``): push, pull, stat and list over one stream.

A request is a 4-byte id and a little-endian uint32 length, then that many
bytes: ``STAT``/``LIST``/``RECV`` carry a path, ``SEND`` carries
``path,mode`` and is followed by ``DATA`` chunks and a ``DONE`` whose length
field is the mtime; ``QUIT`` ends the session. With the ``stat_v2`` feature
the client asks ``STA2``/``LST2`` instead of ``STAT``: the reply is the full
stat (error, dev, ino, mode, nlink, uid, gid, size, atime, mtime, ctime) or the
errno with zeros. Replies: ``STAT`` mode, size,
mtime (all zero for a missing path); ``DENT`` entries then ``DONE``; ``DATA``
chunks then ``DONE``; ``OKAY``; ``FAIL`` with a message.
"""

from __future__ import annotations

import os
import struct

from .protocol import Stream
from .sandbox import Sandbox, SandboxError

MAX_DATA = 64 * 1024
U32 = struct.Struct("<I")


def _id_len(stream: Stream) -> tuple[bytes, int]:
    head = stream.read_exact(8)
    return head[:4], U32.unpack(head[4:])[0]


def fail(stream: Stream, message: str) -> None:
    data = message.encode()
    stream.write(b"FAIL" + U32.pack(len(data)) + data)


def serve_sync(stream: Stream, sandbox: Sandbox) -> None:
    while True:
        request, length = _id_len(stream)
        payload = stream.read_exact(length) if request != b"QUIT" else b""
        if request == b"QUIT":
            return
        path = payload.decode(errors="replace")
        with sandbox.lock:
            sandbox.sync_requests.append(request.decode(errors="replace"))
        if request in (b"STA2", b"LST2"):
            stat_v2(stream, sandbox, path, request)
        elif request == b"STAT":
            stat(stream, sandbox, path)
        elif request == b"LIST":
            listing(stream, sandbox, path)
        elif request == b"SEND":
            if not send(stream, sandbox, path):
                return
        elif request == b"RECV":
            recv(stream, sandbox, path)
        else:
            fail(stream, f"unknown sync request '{request.decode(errors='replace')}'")
            return


def stat(stream: Stream, sandbox: Sandbox, path: str) -> None:
    try:
        st = os.stat(sandbox.host_path(path))
        fields = (st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime))
    except (SandboxError, OSError):
        fields = (0, 0, 0)
    stream.write(b"STAT" + struct.pack("<3I", *fields))


STAT_V2 = struct.Struct("<4sIQQIIIIQqqq")     # id, error, dev, ino, mode, nlink, uid, gid, size, atime, mtime, ctime


def stat_v2(stream: Stream, sandbox: Sandbox, path: str, request: bytes) -> None:
    """STA2 (stat) / LST2 (lstat): the full stat, or the errno with every field zero."""
    try:
        host = sandbox.host_path(path)
        st = os.lstat(host) if request == b"LST2" else os.stat(host)
    except (SandboxError, OSError) as exc:
        error = getattr(exc, "errno", None) or (13 if isinstance(exc, SandboxError) else 2)
        stream.write(STAT_V2.pack(request, error, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        return
    stream.write(STAT_V2.pack(request, 0, st.st_dev, st.st_ino, st.st_mode, st.st_nlink, 2000, 2000, st.st_size,
                              int(st.st_atime), int(st.st_mtime), int(st.st_ctime)))


def listing(stream: Stream, sandbox: Sandbox, path: str) -> None:
    try:
        host = sandbox.host_path(path)
        entries = sorted(host.iterdir()) if host.is_dir() else []
    except (SandboxError, OSError):
        entries = []
    out = bytearray()
    for entry in entries:
        st = entry.lstat()
        name = entry.name.encode()
        out += b"DENT" + struct.pack("<4I", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime), len(name)) + name
    stream.write(bytes(out) + b"DONE" + struct.pack("<4I", 0, 0, 0, 0))


def send(stream: Stream, sandbox: Sandbox, spec: str) -> bool:
    """Receive one file; the DATA/DONE sequence is always read to its end so the stream stays in step."""
    path, _, mode = spec.rpartition(",")
    error = None
    try:
        host = sandbox.host_path(path)
        if not host.parent.is_dir():
            error = "couldn't create file: No such file or directory"
        elif host.is_dir():
            error = "couldn't create file: Is a directory"
    except SandboxError as exc:
        error = f"couldn't create file: {exc}"
    chunks = []
    while True:
        kind, length = _id_len(stream)
        if kind == b"DATA":
            chunks.append(stream.read_exact(length))
        elif kind == b"DONE":
            mtime = length
            break
        else:
            fail(stream, f"invalid data message '{kind.decode(errors='replace')}'")
            return False
    if error is None:
        tmp = host.with_name(host.name + ".partial")
        tmp.write_bytes(b"".join(chunks))
        os.replace(tmp, host)
        host.chmod((int(mode) if mode.isdigit() else 0o644) & 0o777)
        os.utime(host, (mtime, mtime))
        stream.write(b"OKAY" + U32.pack(0))
    else:
        fail(stream, error)
    return True


def recv(stream: Stream, sandbox: Sandbox, path: str) -> None:
    try:
        data = sandbox.read(path)
    except SandboxError as exc:
        fail(stream, str(exc).split(": ", 1)[-1])
        return
    out = bytearray()
    for start in range(0, len(data), MAX_DATA):
        chunk = data[start:start + MAX_DATA]
        out += b"DATA" + U32.pack(len(chunk)) + chunk
    stream.write(bytes(out) + b"DONE" + U32.pack(0))
