"""This host: ONNX Runtime, ExecuTorch and eager PyTorch on the CPU, one subprocess per case.

Each case runs in a fresh ``python -m mobexport.devices.case_worker`` so that
(1) peak memory is the case's own, measured above the runtime's idle
baseline, (2) one runtime's idle threads cannot slow the next case down, and
(3) a crash (a segfault in a runtime, an out-of-memory kill) fails that case
only. Thread count and CPU affinity are set inside the worker.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from mobexport.errors import DeviceError
from mobexport.manifest import tool_versions
from mobexport.processes import is_alive

from .runtimes import EXECUTORCH, LITERT, ONNX
from .device import EAGER, Availability, CaseFailed, CaseJob, Device, Measurement

WORKER_MODULE = "mobexport.devices.case_worker"
DEFAULT_CASE_TIMEOUT_S = 1800.0
CASE_DIR_PREFIX = "mobexport-case-"
# The worker's parent-death check: it exits at once if this process is gone (see case_worker.die_with_parent).
PARENT_PID_ENV = "MOBEXPORT_CASE_PARENT_PID"


def case_dir_prefix(pid: int | None = None) -> str:
    """``mobexport-case-PID-``: the owner's process id in the name tells a stale directory from a live one."""
    return f"{CASE_DIR_PREFIX}{os.getpid() if pid is None else pid}-"


def sweep_stale_case_dirs(temp_root: Path | None = None) -> list[Path]:
    """Remove the case directories of this user's processes that are gone (killed mid-case); returns them."""
    root = Path(temp_root or tempfile.gettempdir())
    removed = []
    try:
        candidates = list(root.glob(f"{CASE_DIR_PREFIX}*"))
    except OSError:
        return removed
    for path in candidates:
        owner = re.fullmatch(rf"{CASE_DIR_PREFIX}(\d+)-.+", path.name)
        try:
            if owner is None or path.is_symlink() or not path.is_dir() or path.stat().st_uid != os.getuid():
                continue
        except OSError:
            continue
        pid = int(owner.group(1))
        if pid != os.getpid() and not is_alive(pid):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


class SubprocessDevice(Device):
    """A device whose cases run in a worker subprocess on this host."""

    runtime_device = "cpu"   # what the target's load() is told to run on

    def __init__(self, cpus: list[int] | None = None, timeout_s: float = DEFAULT_CASE_TIMEOUT_S,
                 worker_command: list[str] | None = None):
        self.cpus = sorted(set(cpus)) if cpus else None
        self.timeout_s = timeout_s
        # Tests swap the worker for one that crashes on purpose; users never need to.
        self.worker_command = worker_command or [sys.executable, "-m", WORKER_MODULE]
        if self.cpus and hasattr(os, "sched_getaffinity"):
            usable = os.sched_getaffinity(0)
            outside = [c for c in self.cpus if c not in usable]
            if outside:
                raise DeviceError(f"CPU(s) {', '.join(map(str, outside))} are not usable here",
                                  f"choose from {', '.join(map(str, sorted(usable)))}")

    def measure(self, job: CaseJob) -> Measurement:
        self.check_kind(job.kind)
        spec = {"job": job.to_dict(), "device": self.runtime_device, "cpus": self.cpus}
        env = {**os.environ, PARENT_PID_ENV: str(os.getpid())}
        try:
            tmp = Path(tempfile.mkdtemp(prefix=case_dir_prefix()))
        except OSError as exc:
            raise _scratch_failed(Path(tempfile.gettempdir()), exc) from None
        try:
            try:
                proc, result = self._run_worker(tmp, spec, env)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        except KeyboardInterrupt:
            # Ctrl-C or SIGTERM may land inside the removal above and cut it short; the handler ignores
            # a second signal, so this one finishes.
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if result is None or not result.get("ok"):
            raise CaseFailed(describe_failure(proc, result))
        conditions = dict(result["conditions"])
        if proc.returncode != 0:
            conditions["worker_exit"] = proc.returncode
        return Measurement(
            samples_s=result["samples_s"],
            warmup=result["warmup"],
            init_s=result["init_s"],
            peak_memory_bytes=result["peak_memory_bytes"],
            conditions=conditions,
            tool_versions=tool_versions(),
        )

    def _run_worker(self, tmp: Path, spec: dict, env: dict) -> tuple[subprocess.CompletedProcess, dict | None]:
        """Run the case's worker in ``tmp``: the finished process and the result it wrote (None if none)."""
        job_file, result_file = tmp / "job.json", tmp / "result.json"
        try:
            job_file.write_text(json.dumps(spec))
        except OSError as exc:
            raise _scratch_failed(job_file, exc) from None
        try:
            proc = subprocess.run([*self.worker_command, str(job_file), str(result_file)],
                                  capture_output=True, text=True, timeout=self.timeout_s, env=env)
        except subprocess.TimeoutExpired:
            raise CaseFailed(f"timed out after {self.timeout_s:.0f} s") from None
        try:
            return proc, json.loads(result_file.read_text()) if result_file.is_file() else None
        except (OSError, ValueError) as exc:
            raise CaseFailed(f"the worker's result could not be read ({exc})") from None


def _scratch_failed(path: Path, exc: OSError) -> DeviceError:
    from mobexport.safe_files import why_write_failed

    return DeviceError(f"cannot write the case's job file '{path}': {why_write_failed(exc)}",
                       "free space in the temporary directory, raise the limit, or point TMPDIR elsewhere")


def describe_failure(proc: subprocess.CompletedProcess, result: dict | None) -> str:
    """One line on why a worker produced no measurement."""
    if result is not None and result.get("error"):
        return result["error"]
    if proc.returncode < 0:
        try:
            name = signal.Signals(-proc.returncode).name
        except ValueError:
            name = f"signal {-proc.returncode}"
        reason = f"worker crashed ({name})"
    else:
        reason = f"worker exited with status {proc.returncode} and no result"
    tail = [line for line in (proc.stderr or "").strip().splitlines() if line.strip()]
    return f"{reason}: {tail[-1][:300]}" if tail else reason


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Hardware", "Processor")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                  text=True, timeout=10).stdout.strip() or platform.processor()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine()


def memory_total_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


# Instruction-set extensions that change which kernels a runtime picks (and so relative speeds).
ISA_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_tile", "neon", "asimd",
             "asimddp", "sve")


def cpu_identity() -> dict:
    """CPU family/model/stepping and the ISA extensions from /proc/cpuinfo (empty elsewhere).

    Virtual machines often mask the model name ("AMD EPYC"); these tell CPU generations apart.
    """
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("cpu family", "model", "stepping", "flags", "Features", "CPU part") and key not in fields:
                fields[key] = value.strip()
            if not line.strip() and fields:
                break
    except OSError:
        return {}
    identity = {}
    ident = " ".join(f"{k} {fields[k]}" for k in ("cpu family", "model", "stepping", "CPU part") if k in fields)
    if ident:
        identity["cpu_id"] = ident
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    if flags:
        identity["isa"] = " ".join(f for f in ISA_FLAGS if f in flags)
    return identity


def host_fingerprint() -> dict:
    return {
        "cpu": cpu_model(),
        **cpu_identity(),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "memory_bytes": memory_total_bytes(),
    }


class LocalDevice(SubprocessDevice):
    """This host's CPU."""

    kinds = (ONNX, EXECUTORCH, LITERT, EAGER)

    @property
    def name(self) -> str:
        return "local"

    def availability(self) -> Availability:
        return Availability(True)

    def info(self) -> dict:
        info = {"name": self.name, **host_fingerprint()}
        if self.cpus:
            info["cpus"] = self.cpus
        return info
