"""A thin wrapper over the real ``adb`` command-line client.

Every call is ``adb [-s SERIAL] ARGS`` through :mod:`subprocess`, exactly what
a user would type, so the same code path runs against a phone and against the
fake ``adb`` of the test suite (put first on ``PATH`` or passed as ``--adb``).
What the real client does, and this module relies on (checked against the
Debian ``adb`` 29 client and the test suite's adbd emulator):

* a shell command whose device vanishes mid-run exits with status 0 and no
  output (the exit packet never came), so every shell command ends with an
  ``echo`` of a marker and ``$?``: a missing marker is a lost device, and
  the status comes from the marker (which also works with shell protocol v1);
* ``push``/``pull`` print their errors on stdout, not stderr, and a failed
  push ends with a ``0 files pushed`` summary line after the error;
* a TCP device that went away stays listed as ``offline`` while the adb
  server retries, and commands fail with ``error: device offline`` (or
  ``adb: error: failed to get feature set: device offline`` for push/pull);
* a ``HOST:PORT`` serial is attached with ``adb connect``, which exits 0
  even when it fails (the text says ``failed to connect to '...':
  Connection refused``, or ``failed to authenticate to ...`` for a phone
  that has not accepted the key: that one is listed as ``unauthorized``).

Any of those becomes :class:`~mobexport.devices.device.DeviceDisconnectedError`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from mobexport.errors import DeviceError

from .device import DeviceDisconnectedError

DEFAULT_TIMEOUT_S = 120.0
# adb's own messages when the device is gone (not a device-side command's output).
_GONE = re.compile(
    r"^(adb: )?error: (.*: )?(device '.*' not found|device offline|device not found|no devices/emulators found|closed|"
    r"protocol fault.*|device still (connecting|authorizing))",
    re.MULTILINE,
)
EXIT_MARK = "@@mobexport-exit"
_EXIT = re.compile(rf"\n?{EXIT_MARK} (\d+)\n?\Z")
_TCP_SERIAL = re.compile(r"^[\w.-]+:\d+$")


class AdbTimeout(DeviceError):
    """An adb command did not finish in time."""


@dataclass(frozen=True)
class AttachedDevice:
    """One line of ``adb devices -l``."""

    serial: str
    state: str                          # device, offline, unauthorized, ...
    details: dict = field(default_factory=dict)


@dataclass
class ShellResult:
    returncode: int
    stdout: str
    stderr: str


def find_adb(explicit: str | os.PathLike | None = None) -> str:
    """The adb executable: ``--adb PATH`` if given, else the first ``adb`` on PATH."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise DeviceError(f"--adb '{path}' does not exist", "point --adb at the platform-tools adb executable")
        if not os.access(path, os.X_OK):
            raise DeviceError(f"--adb '{path}' is not executable", f"chmod +x {path}")
        return str(path)
    found = shutil.which("adb")
    if found is None:
        raise DeviceError("adb not found on PATH",
                          "install Android SDK platform-tools (apt install adb) or pass --adb PATH")
    return found


def parse_devices(text: str) -> list[AttachedDevice]:
    """Parse ``adb devices -l``: 'SERIAL  STATE key:value ...' lines after the header."""
    devices = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("List of devices", "*")):
            continue
        parts = line.split()
        if len(parts) < 2:
            continue
        details = dict(p.split(":", 1) for p in parts[2:] if ":" in p)
        devices.append(AttachedDevice(parts[0], parts[1], details))
    return devices


class Adb:
    """``adb`` bound to one device serial (or none, for ``devices`` and ``version``)."""

    def __init__(self, executable: str, serial: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.executable = executable
        self.serial = serial
        self.timeout_s = timeout_s

    def for_serial(self, serial: str) -> "Adb":
        return Adb(self.executable, serial, self.timeout_s)

    def command(self, *args: str) -> list[str]:
        return [self.executable, *(["-s", self.serial] if self.serial else []), *args]

    def run(self, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
        """Run adb; a vanished device raises, any other failure is returned to the caller."""
        argv = self.command(*args)
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout or self.timeout_s,
                                  stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise DeviceError(f"adb '{self.executable}' cannot be run", "check --adb or your PATH") from None
        except subprocess.TimeoutExpired:
            raise AdbTimeout(f"'adb {' '.join(args)[:80]}' did not finish in {timeout or self.timeout_s:.0f} s",
                             "is the device responsive? ('adb shell true')") from None
        if proc.returncode != 0:
            gone = _GONE.search(proc.stderr or "") or _GONE.search(proc.stdout or "")
            if gone:
                self._disconnected(gone.group(0).strip())
        return proc

    def _disconnected(self, why: str):
        who = f"'{self.serial}' " if self.serial else ""
        raise DeviceDisconnectedError(
            f"Android device {who}disconnected ({why})",
            "reconnect it and run the same command again: finished cases are kept and skipped")

    def checked(self, *args: str, timeout: float | None = None) -> str:
        proc = self.run(*args, timeout=timeout)
        if proc.returncode != 0:
            # push/pull put their error on stdout, above a '0 files pushed' summary: the error line is the one to show.
            lines = [line.strip() for line in (proc.stderr + "\n" + proc.stdout).splitlines() if line.strip()]
            errors = [line for line in lines if "error:" in line]
            detail = (errors or lines or [str(proc.returncode)])[0 if errors else -1]
            raise DeviceError(f"'adb {' '.join(args)[:120]}' failed: {detail[:300]}", "run it by hand to see more")
        return proc.stdout

    def version(self) -> str:
        out = self.checked("version")
        lines = [line.strip() for line in out.splitlines() if line.strip()]
        return " / ".join(lines[:2])

    def devices(self) -> list[AttachedDevice]:
        return parse_devices(self.checked("devices", "-l"))

    def connect_tcp(self, serial: str) -> bool:
        """``adb connect HOST:PORT`` for a network serial; False if ``serial`` is not one."""
        if not _TCP_SERIAL.match(serial):
            return False
        proc = self.run("connect", serial)
        text = (proc.stdout + proc.stderr).strip()
        # 'failed to authenticate': attached but unauthorized; the device listing says so, with its hint.
        if proc.returncode != 0 or not re.search(r"^(connected|already connected|failed to authenticate) to ", text,
                                                 re.MULTILINE):
            raise DeviceError(f"cannot connect to Android device '{serial}': {text.splitlines()[-1] if text else proc.returncode}",
                              "is adbd listening there ('adb tcpip 5555' on the phone)?")
        return True

    def state(self) -> str:
        proc = self.run("get-state")
        return proc.stdout.strip() if proc.returncode == 0 else "gone"

    def shell(self, command: str, timeout: float | None = None) -> ShellResult:
        """Run ``command`` on the device; its status comes from an echoed marker (see the module's notes)."""
        proc = self.run("shell", f"{command}; echo {EXIT_MARK} $?", timeout=timeout)
        stdout = proc.stdout.replace("\r\n", "\n")
        end = _EXIT.search(stdout)
        if end is None:
            state = self.state()
            if state != "device":
                self._disconnected(f"the shell command ended without its exit status; the device is {state}")
            # Still attached: the line never ran to its end (a syntax error); adb's own status is all there is.
            return ShellResult(proc.returncode, stdout, proc.stderr.replace("\r\n", "\n"))
        return ShellResult(int(end.group(1)), stdout[:end.start()] + ("\n" if end.group(0).startswith("\n") else ""),
                           proc.stderr.replace("\r\n", "\n"))

    def shell_ok(self, command: str, timeout: float | None = None) -> str:
        result = self.shell(command, timeout=timeout)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise DeviceError(f"'{command[:80]}' failed on the device: {detail[-1] if detail else result.returncode}",
                              "run it with 'adb shell' to see more")
        return result.stdout

    def push(self, local: Path, remote: str) -> None:
        self.checked("push", str(local), remote, timeout=max(self.timeout_s, 600))

    def pull(self, remote: str, local: Path) -> None:
        self.checked("pull", remote, str(local), timeout=max(self.timeout_s, 600))
