"""The ADB transport as the device (adbd) speaks it over TCP.

Written from AOSP's ``adb/protocol.txt``: every message is a 24-byte header
of six little-endian uint32 (command, arg0, arg1, data length, data checksum,
command XOR 0xffffffff) followed by the payload. A connection opens with
CNXN both ways (a ``locked`` phone answers with AUTH tokens instead and never
accepts the client's key, so the client lists it as unauthorized); a stream opens with OPEN
(the client's local id and the service name), is accepted with OKAY (our id,
their id) or refused with CLSE (0, their id), carries WRTE payloads that are
each acknowledged with one OKAY before the next may be sent, and ends with
CLSE from either side.
"""

from __future__ import annotations

import os
import queue
import socket
import struct
import threading
from dataclasses import dataclass

A_SYNC = 0x434E5953
A_CNXN = 0x4E584E43
A_OPEN = 0x4E45504F
A_OKAY = 0x59414B4F
A_CLSE = 0x45534C43
A_WRTE = 0x45545257
A_AUTH = 0x48545541

AUTH_TOKEN, AUTH_SIGNATURE, AUTH_RSAPUBLICKEY = 1, 2, 3
A_VERSION = 0x01000001          # the version that no longer checks payload checksums
MAX_PAYLOAD = 256 * 1024
HEADER = struct.Struct("<6I")
NAMES = {A_SYNC: "SYNC", A_CNXN: "CNXN", A_OPEN: "OPEN", A_OKAY: "OKAY", A_CLSE: "CLSE", A_WRTE: "WRTE",
         A_AUTH: "AUTH"}


class ConnectionClosed(Exception):
    """The peer went away (or we hung up on purpose)."""


@dataclass
class Message:
    command: int
    arg0: int
    arg1: int
    data: bytes = b""

    def pack(self) -> bytes:
        return HEADER.pack(self.command, self.arg0, self.arg1, len(self.data), sum(self.data) & 0xFFFFFFFF,
                           self.command ^ 0xFFFFFFFF) + self.data

    def __repr__(self) -> str:
        return f"{NAMES.get(self.command, hex(self.command))}({self.arg0}, {self.arg1}, {self.data[:40]!r})"


def read_exact(sock: socket.socket, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = sock.recv(left)
        if not chunk:
            raise ConnectionClosed("peer closed the connection")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_message(sock: socket.socket) -> Message:
    command, arg0, arg1, length, _check, magic = HEADER.unpack(read_exact(sock, HEADER.size))
    if magic != command ^ 0xFFFFFFFF:
        raise ConnectionClosed(f"bad magic in a message header ({command:#x})")
    return Message(command, arg0, arg1, read_exact(sock, length) if length else b"")


class Stream:
    """One open service stream, seen from the service: blocking reads, flow-controlled writes."""

    def __init__(self, connection: "Connection", local_id: int, remote_id: int):
        self.connection = connection
        self.local_id = local_id
        self.remote_id = remote_id
        self._incoming: queue.Queue[bytes | None] = queue.Queue()
        self._acks: queue.Queue[bool] = queue.Queue()
        self._buffer = bytearray()
        self.closed = False

    # -- called by the connection's reader thread
    def deliver(self, data: bytes) -> None:
        self._incoming.put(data)

    def acknowledge(self) -> None:
        self._acks.put(True)

    def remote_closed(self) -> None:
        self.closed = True
        self._incoming.put(None)
        self._acks.put(False)

    # -- called by the service
    def accept(self) -> None:
        """OKAY(our id, their id): the service exists and the stream is open."""
        self.connection.send(Message(A_OKAY, self.local_id, self.remote_id))

    def read_exact(self, n: int) -> bytes:
        while len(self._buffer) < n:
            chunk = self._incoming.get()
            if chunk is None:
                self._incoming.put(None)
                raise ConnectionClosed("stream closed by the client")
            self._buffer += chunk
        data, self._buffer = bytes(self._buffer[:n]), self._buffer[n:]
        return data

    def read_some(self, timeout: float | None = None) -> bytes | None:
        """Whatever arrived next (None once the stream is closed; b'' on timeout)."""
        if self._buffer:
            data, self._buffer = bytes(self._buffer), bytearray()
            return data
        try:
            chunk = self._incoming.get(timeout=timeout)
        except queue.Empty:
            return b""
        if chunk is None:
            self._incoming.put(None)
        return chunk

    def write(self, data: bytes) -> None:
        """Send in WRTE chunks, waiting for the client's OKAY after each (the protocol's flow control)."""
        step = self.connection.max_payload
        for start in range(0, len(data), step):
            if self.closed:
                raise ConnectionClosed("stream closed by the client")
            self.connection.send(Message(A_WRTE, self.local_id, self.remote_id, data[start:start + step]))
            if not self._acks.get():
                raise ConnectionClosed("stream closed by the client")

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.connection.send(Message(A_CLSE, self.local_id, self.remote_id))
        self.connection.forget(self.local_id)


class Connection:
    """One client (an adb server) on one TCP socket: the handshake, then streams dispatched to services."""

    def __init__(self, sock: socket.socket, banner: str, open_service, on_close=None, locked: bool = False):
        self.sock = sock
        self.banner = banner
        self.open_service = open_service        # (name, stream) -> bool accepted; runs on its own thread
        self.on_close = on_close
        self.max_payload = MAX_PAYLOAD
        self._send_lock = threading.Lock()
        self._streams: dict[int, Stream] = {}
        self._next_id = 1
        self.alive = True
        self.locked = locked                    # True: a phone whose user never accepts the debugging prompt

    def send(self, message: Message) -> None:
        with self._send_lock:
            try:
                self.sock.sendall(message.pack())
            except OSError as exc:
                raise ConnectionClosed(str(exc)) from None

    def forget(self, local_id: int) -> None:
        self._streams.pop(local_id, None)

    def hang_up(self) -> None:
        """Drop the TCP connection as an unplugged phone would."""
        self.alive = False
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def serve(self) -> None:
        try:
            while self.alive:
                self._handle(read_message(self.sock))
        except (ConnectionClosed, OSError):
            pass
        finally:
            self.alive = False
            for stream in list(self._streams.values()):
                stream.remote_closed()
            try:
                self.sock.close()
            except OSError:
                pass
            if self.on_close:
                self.on_close(self)

    def _handle(self, message: Message) -> None:
        if message.command == A_CNXN and self.locked:
            self.send(Message(A_AUTH, AUTH_TOKEN, 0, os.urandom(20)))
        elif message.command == A_CNXN:
            self.max_payload = max(4096, min(message.arg1 or MAX_PAYLOAD, MAX_PAYLOAD))
            self.send(Message(A_CNXN, A_VERSION, MAX_PAYLOAD, self.banner.encode()))
        elif message.command == A_AUTH and message.arg0 == AUTH_SIGNATURE:
            self.send(Message(A_AUTH, AUTH_TOKEN, 0, os.urandom(20)))   # no key we know: ask again
        elif message.command == A_AUTH:
            pass                                                      # RSAPUBLICKEY: the prompt nobody answers
        elif message.command == A_OPEN:
            name = message.data.rstrip(b"\0").decode(errors="replace")
            local_id, self._next_id = self._next_id, self._next_id + 1
            stream = Stream(self, local_id, message.arg0)
            self._streams[local_id] = stream
            threading.Thread(target=self._run_service, args=(name, stream), daemon=True).start()
        elif message.command == A_WRTE:
            stream = self._streams.get(message.arg1)
            if stream is None:
                self.send(Message(A_CLSE, 0, message.arg0))
                return
            stream.deliver(message.data)
            self.send(Message(A_OKAY, stream.local_id, stream.remote_id))
        elif message.command == A_OKAY:
            stream = self._streams.get(message.arg1)
            if stream is not None:
                stream.acknowledge()
        elif message.command == A_CLSE:
            stream = self._streams.pop(message.arg1, None)
            if stream is not None:
                stream.remote_closed()
        # SYNC and AUTH from a client are not expected here: ignored.

    def _run_service(self, name: str, stream: Stream) -> None:
        try:
            accepted = self.open_service(name, stream)
            if not accepted:
                self.send(Message(A_CLSE, 0, stream.remote_id))
                self.forget(stream.local_id)
        except ConnectionClosed:
            pass
        finally:
            if self.alive and not stream.closed and stream.local_id in self._streams:
                try:
                    stream.close()
                except ConnectionClosed:
                    pass
