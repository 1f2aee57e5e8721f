"""The emulated phone's state: a sandboxed file system, its properties and its thermal trace.

Only three device paths exist: ``/data/local/tmp`` (a temporary directory),
``/sys`` (a copy of a fixture tree: CPU frequencies, governors, thermal zones)
and ``/proc/cpuinfo``. Every other path is refused, and every path is resolved
(``..`` and symlinks included) before use, so nothing outside the sandbox is
ever read or written.
"""

from __future__ import annotations

import json
import posixpath
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
DEVICE_ROOTS = ("/data/local/tmp", "/sys", "/proc/cpuinfo")


class SandboxError(Exception):
    """A path the phone does not have or does not let the shell user touch."""


@dataclass
class PhoneSpec:
    """What the emulated phone is; :meth:`from_fixture` reads ``fixtures/<name>.json`` and ``fixtures/<name>/sys``."""

    serial_name: str = "emulated"
    props: dict = field(default_factory=dict)
    sys_tree: Path | None = None
    thermal_trace: dict = field(default_factory=dict)      # zone -> [millidegrees per read], the last repeats
    traces: dict = field(default_factory=dict)             # any /sys file path -> [value per read], the last repeats
    cpuinfo: str = ""
    disconnect_on_run: int | None = None                   # hang up when the N-th runner starts
    replug_after_s: float | None = None                    # then listen again after this long (None: gone for good)
    locked: bool = False                                   # never accepts the client's key: 'unauthorized'

    @classmethod
    def from_fixture(cls, name: str = "pixel8", **overrides) -> "PhoneSpec":
        data = json.loads((FIXTURES / f"{name}.json").read_text())
        spec = cls(serial_name=name, props=data["props"], sys_tree=FIXTURES / name / "sys",
                   thermal_trace=data.get("thermal_trace", {}), cpuinfo=data.get("cpuinfo", ""))
        for key, value in overrides.items():
            setattr(spec, key, value)
        return spec


class Sandbox:
    """The phone's files under ``root`` and what happened to them (for tests to read)."""

    def __init__(self, root: Path, spec: PhoneSpec):
        self.root = Path(root).resolve()
        self.spec = spec
        (self.root / "data/local/tmp").mkdir(parents=True, exist_ok=True)
        if spec.sys_tree is not None:
            shutil.copytree(spec.sys_tree, self.root / "sys", dirs_exist_ok=True)
        (self.root / "sys").mkdir(exist_ok=True)
        (self.root / "proc").mkdir(exist_ok=True)
        (self.root / "proc/cpuinfo").write_text(spec.cpuinfo)
        self.lock = threading.Lock()
        self.thermal_reads: dict[str, int] = {}
        self.commands: list[str] = []            # every shell command line, as received
        self.taskset_masks: list[str] = []
        self.sync_requests: list[str] = []       # STAT, STA2, SEND, RECV, ... as the client sent them
        self.runs = 0                            # runner binaries started

    # -- paths ---------------------------------------------------------------------------------
    def host_path(self, device_path: str, cwd: str = "/") -> Path:
        """The host file behind ``device_path``; SandboxError for anything outside the phone's roots."""
        path = posixpath.normpath(posixpath.join(cwd, device_path))
        if not any(path == r or path.startswith(r + "/") for r in DEVICE_ROOTS):
            raise SandboxError(f"{device_path}: Permission denied")
        host = (self.root / path.lstrip("/")).resolve()
        if host != self.root and self.root not in host.parents:
            raise SandboxError(f"{device_path}: Permission denied")
        return host

    def device_path(self, host: Path) -> str:
        return "/" + str(Path(host).resolve().relative_to(self.root))

    def hide_root(self, text: str) -> str:
        """Host paths in a stand-in's output, written back as the phone's."""
        return text.replace(str(self.root), "")

    # -- files with behaviour ------------------------------------------------------------------
    def read(self, device_path: str, cwd: str = "/") -> bytes:
        host = self.host_path(device_path, cwd)
        if host.is_dir():
            raise SandboxError(f"{device_path}: Is a directory")
        if not host.is_file():
            raise SandboxError(f"{device_path}: No such file or directory")
        zone = self._thermal_zone(host)
        key, trace = (zone, self.spec.thermal_trace.get(zone)) if zone is not None else (None, None)
        if trace is None:
            key = self.device_path(host)
            trace = self.spec.traces.get(key)
        if trace:
            with self.lock:
                index = self.thermal_reads.get(key, 0)
                self.thermal_reads[key] = index + 1
                host.write_text(f"{trace[min(index, len(trace) - 1)]}\n")
        return host.read_bytes()

    def _thermal_zone(self, host: Path) -> str | None:
        if host.name == "temp" and host.parent.parent == self.root / "sys/class/thermal":
            return host.parent.name
        return None

    def cores(self) -> list[int]:
        cpu = self.root / "sys/devices/system/cpu"
        return sorted(int(p.name[3:]) for p in cpu.glob("cpu[0-9]*") if p.name[3:].isdigit())
