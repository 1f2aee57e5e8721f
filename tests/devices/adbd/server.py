"""adbd for tests: listens on 127.0.0.1, answers the real adb client's server, serves one sandboxed phone.

Services (AOSP ``adb/SERVICES.TXT``): ``shell,v2[,TERM=..][,raw|pty]:CMD``
(shell protocol v2: packets of a 1-byte id and a little-endian uint32 length,
stdout = 1, stderr = 2, exit = 3 with one status byte; stdin = 0 and
close-stdin = 4 from the client are read and ignored), ``shell:CMD`` (v1:
stdout and stderr merged, no status) and ``sync:``. Anything else is refused.

:meth:`AdbdEmulator.unplug` is the cable pulled out: every connection is
dropped and the port stops listening, so the adb server cannot reconnect
(until ``replug_after_s`` has passed, when the phone has it).
"""

from __future__ import annotations

import socket
import struct
import threading
from pathlib import Path

from .protocol import Connection, ConnectionClosed, Stream
from .sandbox import PhoneSpec, Sandbox
from .shell import HangUp, Shell
from .sync import serve_sync

ID_STDOUT, ID_STDERR, ID_EXIT = 1, 2, 3
FEATURES = ("shell_v2", "cmd", "stat_v2")


def shell_packet(kind: int, data: bytes) -> bytes:
    return struct.pack("<BI", kind, len(data)) + data


class AdbdEmulator:
    def __init__(self, root: Path, spec: PhoneSpec | None = None, features: tuple[str, ...] = FEATURES):
        self.spec = spec or PhoneSpec.from_fixture()
        self.sandbox = Sandbox(root, self.spec)
        self.features = features
        self.services: list[str] = []            # every service the client opened, in order
        self._listener: socket.socket | None = None
        self._connections: list[Connection] = []
        self._running: dict = {}
        self._lock = threading.Lock()
        self.port: int | None = None

    @property
    def serial(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def banner(self) -> str:
        props = self.spec.props
        fields = [f"ro.product.name={props.get('ro.product.name', '')}",
                  f"ro.product.model={props.get('ro.product.model', '')}",
                  f"ro.product.device={props.get('ro.product.device', '')}",
                  f"features={','.join(self.features)}"]
        return "device::" + ";".join(fields)

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> "AdbdEmulator":
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port or 0))
        listener.listen(4)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            connection = Connection(sock, self.banner, self._open_service, on_close=self._closed,
                                    locked=self.spec.locked)
            with self._lock:
                self._connections.append(connection)
            threading.Thread(target=connection.serve, daemon=True).start()

    def _closed(self, connection: Connection) -> None:
        with self._lock:
            if connection in self._connections:
                self._connections.remove(connection)

    def unplug(self) -> None:
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)     # wakes the blocked accept(); close() alone does not
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.hang_up()

    def stop(self) -> None:
        self.unplug()
        for _, proc in list(self._running.values()):
            proc.kill()

    # -- services ------------------------------------------------------------------------------
    def _open_service(self, name: str, stream: Stream) -> bool:
        self.services.append(name)
        service, _, argument = name.partition(":")
        options = service.split(",")
        if options[0] == "shell":
            if not argument:
                return False                      # no interactive shells here
            stream.accept()
            self._shell(argument, stream, "v2" in options[1:])
            return True
        if service == "sync" and not argument:
            stream.accept()
            serve_sync(stream, self.sandbox)
            return True
        return False

    def _shell(self, command: str, stream: Stream, v2: bool) -> None:
        try:
            status, result = Shell(self.sandbox, self._running).run(command)
        except HangUp:
            self.unplug()
            if self.spec.replug_after_s is not None:
                threading.Timer(self.spec.replug_after_s, self.start).start()
            raise ConnectionClosed("unplugged") from None
        if v2:
            packets = b"".join(shell_packet(ID_STDOUT if channel == 1 else ID_STDERR, data)
                               for channel, data in result.chunks)
            stream.write(packets + shell_packet(ID_EXIT, bytes([status & 0xFF])))
        else:
            # v1: one raw stream carrying both outputs in the order written, and no exit status.
            stream.write(b"".join(data for _, data in result.chunks))
