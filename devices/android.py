"""An Android phone over adb: ``--device adb`` or ``--device adb:SERIAL``.

Per sweep: pick the device (the only one attached, or SERIAL), read what it is
(``getprop``: model, SoC, ABI, Android version), find its big cores (the
cores whose ``cpuinfo_max_freq`` is above the slowest cluster's; all cores on
a single-cluster SoC), and push the runner binary to ``/data/local/tmp/mobexport/``.

Per case:

1. push the artifact;
2. wait until the CPU thermal zones are below ``threshold_c`` (polling every
   ``poll_s``, giving up after ``max_wait_s`` and saying so in the record);
3. a short probe run estimates the per-inference time; the measuring policy
   turns it into warmup + timed executions (:meth:`MeasurePolicy.counts_for`);
4. the measured run is pinned with ``taskset`` to the big cores (to every core
   when ``threads`` exceeds the big-core count: the threads axis compares
   big-core-only against all-core runs) and wrapped in
   toybox ``time -v``, whose ``Max RSS`` is the runner's peak RSS (VmHWM);
5. the first ``warmup`` per-execution times are dropped, governor and
   temperatures recorded, the artifact removed.

``close()`` removes ``/data/local/tmp/mobexport``. A phone that drops during a
case and is back within ``reconnect_wait_s`` fails that case only (the sweep
goes on; the runner is pushed again); one that stays away raises
:class:`DeviceDisconnectedError` and the sweep stops, keeping finished cases.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from mobexport import __version__
from mobexport.errors import DeviceError

from .adb_client import Adb, AdbTimeout, AttachedDevice, find_adb
from .android_runners import RUNNERS, AndroidRunner, RunnerOutput, check_binary
from .device import Availability, CaseFailed, CaseJob, Device, DeviceDisconnectedError, Measurement

DEVICE_DIR = "/data/local/tmp/mobexport"
CPU_ZONE_HINTS = ("cpu", "soc", "tsens", "cluster", "big", "little", "mid", "prime", "apc", "mtktscpu")
CPU_DIR = "/sys/devices/system/cpu"
THERMAL_DIR = "/sys/class/thermal"


@dataclass(frozen=True)
class CoolingPolicy:
    """Wait between cases until the CPU is cooler than ``threshold_c``."""

    threshold_c: float = 42.0
    poll_s: float = 5.0
    max_wait_s: float = 300.0


@dataclass
class CpuCore:
    index: int
    max_khz: int | None
    governor: str | None = None


def parse_getprop(text: str) -> dict[str, str]:
    """``[key]: [value]`` lines of ``getprop``."""
    return dict(re.findall(r"^\[([^\]]+)\]:\s*\[(.*)\]\s*$", text, re.MULTILINE))


def big_cores(cores: list[CpuCore]) -> list[int]:
    """Cores faster than the slowest cluster; every core when all clusters are equal."""
    known = [c for c in cores if c.max_khz]
    if not known:
        return [c.index for c in cores]
    slowest = min(c.max_khz for c in known)
    fast = [c.index for c in known if c.max_khz > slowest]
    return fast or [c.index for c in known]


def cpu_mask(indices: list[int]) -> str:
    """taskset's hexadecimal mask, e.g. [4, 5, 6, 7] -> 'f0'."""
    return format(sum(1 << i for i in indices), "x")


def parse_temperatures(text: str) -> dict[str, float]:
    """``type value`` lines of thermal zones -> degrees Celsius (millidegrees are converted)."""
    temps = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and re.fullmatch(r"-?\d+", parts[1]):
            value = int(parts[1])
            temps[parts[0]] = value / 1000 if abs(value) >= 200 else float(value)
    return temps


def cpu_temperature(temps: dict[str, float]) -> float | None:
    """The hottest CPU-like zone (every zone if none looks like a CPU's)."""
    cpu = [t for name, t in temps.items() if any(h in name.lower() for h in CPU_ZONE_HINTS)]
    pool = cpu or list(temps.values())
    return max(pool) if pool else None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def measured_run_command(argv: list[str], mask: str) -> str:
    """``argv`` pinned to ``mask`` under toybox ``time -v`` (its ``Max RSS`` is the runner's VmHWM)."""
    command = " ".join(shlex.quote(a) for a in argv)
    return (f"cd {DEVICE_DIR} && rm -f result.txt && "
            f"LD_LIBRARY_PATH={DEVICE_DIR} taskset {mask} time -v {command}")


_TIME_BLOCK = re.compile(r"^Real time \(s\):.*?^Max RSS \(KiB\): (\d+)\n(?:^[A-Z][^:\n]*: [0-9.]+\n)*",
                         re.MULTILINE | re.DOTALL)


def split_time_output(text: str) -> tuple[str, int]:
    """(the runner's own output, its peak RSS in kB) from output with ``time -v``'s report in it; 0 when absent."""
    match = None
    for match in _TIME_BLOCK.finditer(text):
        pass
    if match is None:
        return text, 0
    return text[:match.start()] + text[match.end():], int(match.group(1))


def parse_grep_files(text: str) -> dict[str, str]:
    """``path:value`` lines of ``grep -H`` -> {path: value} (the first line of each file)."""
    files: dict[str, str] = {}
    for line in text.splitlines():
        path, sep, value = line.partition(":")
        if sep and path.startswith("/") and path not in files:
            files[path] = value.strip()
    return files


def cores_from_files(listing: str, files: dict[str, str]) -> list[CpuCore]:
    """Every ``cpuN`` of the listing, with its max frequency and governor where readable."""
    indices = sorted(int(n[3:]) for n in listing.split() if re.fullmatch(r"cpu\d+", n))
    cores = []
    for index in indices:
        khz = files.get(f"{CPU_DIR}/cpu{index}/cpufreq/cpuinfo_max_freq", "")
        governor = files.get(f"{CPU_DIR}/cpu{index}/cpufreq/scaling_governor")
        cores.append(CpuCore(index, int(khz) if khz.isdigit() else None, governor or None))
    return cores


def zone_lines(files: dict[str, str]) -> str:
    """``type value`` lines of the thermal zones (the zone's directory name where it has no type)."""
    lines = []
    for path, value in files.items():
        match = re.fullmatch(rf"{THERMAL_DIR}/(thermal_zone\d+)/temp", path)
        if match:
            kind = files.get(f"{THERMAL_DIR}/{match.group(1)}/type") or match.group(1)
            lines.append(f"{kind} {value}")
    return "\n".join(lines)


class AndroidDevice(Device):
    kinds = tuple(RUNNERS)

    def __init__(self, serial: str | None = None, adb: str | os.PathLike | None = None,
                 runners: dict[str, Path] | None = None, cooling: CoolingPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep, timeout_s: float = 1800.0, ort_ep: str = "cpu",
                 reconnect_wait_s: float = 30.0):
        self.requested_serial = serial
        self.adb_path = adb
        self.runner_paths = {kind: Path(p) for kind, p in (runners or {}).items() if p}
        for kind, runner in RUNNERS.items():
            if kind not in self.runner_paths and os.environ.get(runner.env):
                self.runner_paths[kind] = Path(os.environ[runner.env])
        self.cooling = cooling or CoolingPolicy()
        self.sleep = sleep
        self.timeout_s = timeout_s
        self.ort_ep = ort_ep
        self.reconnect_wait_s = reconnect_wait_s
        self._adb: Adb | None = None
        self._probe: dict | None = None
        self._pushed: dict[str, str] = {}
        self._dir_made = False

    # -- which device -------------------------------------------------------------------------
    def connect(self) -> Adb:
        """Find adb and the one device to use; one-line errors for every way this fails."""
        if self._adb is not None:
            return self._adb
        adb = Adb(find_adb(self.adb_path))
        attached = adb.devices()
        serial = self.requested_serial
        if serial and not any(d.serial == serial and d.state == "device" for d in attached) \
                and adb.connect_tcp(serial):
            attached = adb.devices()                       # a network phone: 'adb connect' attached it
        chosen = choose_device(attached, serial)
        self._adb = adb.for_serial(chosen.serial)
        return self._adb

    @property
    def name(self) -> str:
        serial = self._adb.serial if self._adb is not None else self.requested_serial
        return f"adb:{serial}" if serial else "adb"

    def availability(self) -> Availability:
        try:
            self.connect()
        except DeviceError as exc:
            return Availability(False, exc.one_line())
        return Availability(True)

    # -- what it is ----------------------------------------------------------------------------
    def probe(self) -> dict:
        if self._probe is not None:
            return self._probe
        adb = self.connect()
        props = parse_getprop(adb.shell_ok("getprop"))
        cores = self.read_cores()
        if not cores:
            raise DeviceError(f"cannot read the CPU cores of {self.name}", "is /sys/devices/system/cpu readable?")
        soc = " ".join(v for v in (props.get("ro.soc.manufacturer"), props.get("ro.soc.model")) if v) \
            or props.get("ro.board.platform") or props.get("ro.hardware") or "unknown SoC"
        self._probe = {
            "props": props,
            "cores": cores,
            "big_cores": big_cores(cores),
            "soc": soc,
            "abi": props.get("ro.product.cpu.abi", "unknown"),
            "adb_version": Adb(adb.executable).version(),
        }
        return self._probe

    def info(self) -> dict:
        p = self.probe()
        props = p["props"]
        khz = {str(c.index): c.max_khz for c in p["cores"]}
        return {
            "name": self.name,
            "model": props.get("ro.product.model"),
            "manufacturer": props.get("ro.product.manufacturer"),
            "soc": p["soc"],
            "cpu": f"{p['soc']} ({len(p['cores'])} cores, big {','.join(map(str, p['big_cores']))})",
            "abi": p["abi"],
            "android": props.get("ro.build.version.release"),
            "sdk": props.get("ro.build.version.sdk"),
            "build": props.get("ro.build.fingerprint"),
            "cores": len(p["cores"]),
            "big_cores": p["big_cores"],
            "max_freq_khz": khz,
        }

    def read_sys(self, *patterns: str) -> dict[str, str]:
        """``path -> first line`` of the /sys files matching ``patterns`` (unreadable ones are left out).

        One ``grep -Hs . FILES`` (toybox and busybox have it) instead of a shell loop: simple
        commands are what every Android shell, and the test suite's emulated phone, run alike.
        """
        result = self.connect().shell("grep -Hs . " + " ".join(patterns))
        if result.returncode not in (0, 1, 2):      # 1: nothing matched; 2: some file was unreadable
            raise DeviceError(f"cannot read {patterns[0]} on {self.name}: status {result.returncode}",
                              "is /sys readable by the shell user?")
        return parse_grep_files(result.stdout)

    def read_cores(self) -> list[CpuCore]:
        listing = self.connect().shell_ok(f"ls {CPU_DIR}")
        files = self.read_sys(f"{CPU_DIR}/cpu[0-9]*/cpufreq/cpuinfo_max_freq",
                              f"{CPU_DIR}/cpu[0-9]*/cpufreq/scaling_governor")
        return cores_from_files(listing, files)

    def temperatures(self) -> dict[str, float]:
        files = self.read_sys(f"{THERMAL_DIR}/thermal_zone*/type", f"{THERMAL_DIR}/thermal_zone*/temp")
        return parse_temperatures(zone_lines(files))

    def frequencies(self) -> dict[str, int]:
        """Current frequency (kHz) of each big core, read during sustained runs."""
        files = self.read_sys(f"{CPU_DIR}/cpu[0-9]*/cpufreq/scaling_cur_freq")
        big = set(self.probe()["big_cores"])
        out = {}
        for path, value in files.items():
            match = re.search(r"/cpu(\d+)/cpufreq/", path)
            if match and int(match.group(1)) in big and value.isdigit():
                out[match.group(1)] = int(value)
        return out

    def governors(self) -> dict[str, str]:
        cores = self.read_cores()
        big = set(self.probe()["big_cores"])
        return {str(c.index): c.governor for c in cores if c.index in big and c.governor}

    # -- runners -------------------------------------------------------------------------------
    def runner_for(self, kind: str) -> tuple[AndroidRunner, Path]:
        Device.check_kind(self, kind)
        runner = RUNNERS[kind]
        path = self.runner_paths.get(kind)
        if path is None:
            raise DeviceError(f"no {runner.description} binary for Android was given",
                              f"build it (docs/benchmarking.md) and pass {runner.flag} PATH or set {runner.env}")
        check_binary(path, self.probe()["abi"], runner.description, runner.flag)
        return runner, path

    def check_kind(self, kind: str) -> None:
        self.runner_for(kind)

    def check_batch(self, batch: int) -> None:
        if batch != 1:
            raise DeviceError(f"--batch {batch}: the Android runners feed the artifact's own input shape (batch 1)",
                              "use --batch 1 with --device adb")

    def _ensure_dir(self) -> None:
        if not self._dir_made:
            self.connect().shell_ok(f"mkdir -p {DEVICE_DIR}")
            self._dir_made = True

    def push_runner(self, kind: str) -> AndroidRunner:
        runner, path = self.runner_for(kind)
        if kind in self._pushed:
            return runner
        adb = self.connect()
        self._ensure_dir()
        adb.push(path, f"{DEVICE_DIR}/{runner.binary}")
        for library in sorted(path.parent.glob("lib*.so")):  # a shared-library build's runtime
            adb.push(library, f"{DEVICE_DIR}/{library.name}")
        adb.shell_ok(f"chmod 755 {DEVICE_DIR}/{runner.binary}")
        self._pushed[kind] = sha256_of(path)
        return runner

    # -- one case ------------------------------------------------------------------------------
    def cool_down(self) -> dict:
        """Wait (with the injected ``sleep``) until the CPU is below the threshold."""
        policy, waited = self.cooling, 0.0
        temp = cpu_temperature(self.temperatures())
        while temp is not None and temp > policy.threshold_c and waited < policy.max_wait_s:
            step = min(policy.poll_s, policy.max_wait_s - waited)
            self.sleep(step)
            waited += step
            temp = cpu_temperature(self.temperatures())
        return {
            "temperature_c_start": temp,
            "cooldown_s": waited,
            "cooldown_gave_up": temp is not None and temp > policy.threshold_c,
            "cooldown_threshold_c": policy.threshold_c,
        }

    def cores_for(self, threads: int) -> list[int]:
        """The big cores, or every core when more threads are asked for than there are big cores."""
        big = self.probe()["big_cores"]
        if threads > len(big):
            return [c.index for c in self.probe()["cores"]]
        return big

    def run_once(self, runner: AndroidRunner, remote_model: str, executions: int, threads: int,
                 mask: str, extra_args: list[str] | None = None) -> tuple[RunnerOutput, int]:
        extra = [*runner.provider_args(self.ort_ep), *(extra_args or [])]
        argv = runner.argv(remote_model, executions, threads, "result.txt", extra)
        adb = self.connect()
        try:
            result = adb.shell(measured_run_command(argv, mask), timeout=self.timeout_s)
        except AdbTimeout as exc:
            adb.shell(f"pkill -x {runner.binary}")
            raise CaseFailed(exc.message) from None
        # stdout then stderr (where time -v reports); a shell-v1 phone has merged them already.
        log, hwm_kb = split_time_output(result.stdout + result.stderr)
        if result.returncode != 0:
            engine_missing = runner.failure(log, self.name)
            if engine_missing is not None:
                raise engine_missing
            lines = [line for line in log.strip().splitlines() if line.strip()]
            raise CaseFailed(f"{runner.binary} exited with status {result.returncode}"
                             + (f": {lines[-1][:300]}" if lines else ""))
        result_text = adb.shell(f"cat {DEVICE_DIR}/result.txt").stdout if runner.writes_result_file else ""
        try:
            output = runner.parse(log, result_text, executions)
        except ValueError as exc:
            raise CaseFailed(str(exc)) from None
        return output, hwm_kb * 1024

    @contextmanager
    def pushed_artifact(self, job: CaseJob) -> Iterator[tuple[AndroidRunner, str]]:
        """Push the runner (once) and the case's artifact; the artifact is removed again afterwards."""
        if job.artifact_path is None or not Path(job.artifact_path).is_file():
            raise CaseFailed(f"artifact '{job.artifact_path}' is missing or not a single file")
        self.check_batch(job.batch)
        runner = self.push_runner(job.kind)
        adb = self.connect()
        artifact = Path(job.artifact_path)
        remote = f"{DEVICE_DIR}/{job.model}-{job.resolution}{artifact.suffix}"
        adb.push(artifact, remote)
        try:
            yield runner, remote
        finally:
            try:
                adb.shell(f"rm -f {shlex.quote(remote)}")
            except DeviceError:
                pass  # disconnected: the error that got us here is the one to report

    def estimate(self, runner: AndroidRunner, remote: str, job: CaseJob, mask: str) -> float:
        """Seconds per inference from a short probe run (its first, cold execution left out)."""
        probe, _ = self.run_once(runner, remote, max(2, job.policy.min_warmup + 1), job.threads, mask)
        return statistics.median(probe.samples_s[1:] or probe.samples_s)

    def tool_versions(self, runner: AndroidRunner, kind: str) -> dict:
        return {"mobexport": __version__, "adb": self.probe()["adb_version"],
                runner.binary: f"sha256:{self._pushed[kind][:16]}"}

    def check_delegate(self, job: CaseJob) -> None:
        """A Core ML-delegated program cannot run on Android at all: say so before pushing anything."""
        refusal = RUNNERS[job.kind].refuses(job.manifest, self.name) if job.kind in RUNNERS else None
        if refusal is not None:
            raise refusal

    def measure(self, job: CaseJob) -> Measurement:
        """Time one case; a phone that drops and comes back within ``reconnect_wait_s`` fails only this case."""
        try:
            return self._measure(job)
        except DeviceDisconnectedError as exc:
            if not self.wait_for_return():
                raise
            raise CaseFailed(f"the phone disconnected during this case and came back ({exc.message})") from None

    def wait_for_return(self) -> bool:
        """Poll (``adb connect`` for a network serial) until the phone is attached again; False after the wait."""
        if self._adb is None or self.reconnect_wait_s <= 0:
            return False
        adb, deadline = self._adb, time.monotonic() + self.reconnect_wait_s
        while True:
            try:
                if adb.serial and ":" in adb.serial:
                    Adb(adb.executable).run("connect", adb.serial)
                if adb.state() == "device":
                    self._dir_made = False          # it may have rebooted: set the directory up again
                    self._pushed.clear()
                    return True
            except DeviceError:
                pass
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.5)

    def _measure(self, job: CaseJob) -> Measurement:
        self.check_delegate(job)
        with self.pushed_artifact(job) as (runner, remote):
            conditions = self.cool_down()
            cores = self.cores_for(job.threads)
            mask = cpu_mask(cores)
            estimate = self.estimate(runner, remote, job, mask)
            warmup, iters = job.policy.counts_for(estimate)
            output, vmhwm = self.run_once(runner, remote, warmup + iters, job.threads, mask)
            if output.per_iteration:
                samples = output.samples_s[warmup:]
            else:
                samples, warmup = output.samples_s, 0
            conditions.update(
                affinity=cores,
                taskset_mask=mask,
                governor=self.governors(),
                temperature_c_end=cpu_temperature(self.temperatures()),
                peak_memory="runner process VmHWM (whole process)" if vmhwm else "runner-reported peak working set",
                probe_estimate_s=estimate,
                notes=output.notes,
                **runner.provider_conditions(self.ort_ep),
            )
            return Measurement(
                samples_s=samples,
                warmup=warmup,
                init_s=output.init_s,
                peak_memory_bytes=vmhwm or output.reported_peak_bytes,
                conditions=conditions,
                tool_versions=self.tool_versions(runner, job.kind),
            )

    def close(self) -> None:
        if self._adb is not None and self._dir_made:
            try:
                self._adb.shell(f"rm -rf {DEVICE_DIR}")
            except DeviceError:
                pass  # the device is gone; nothing left to clean on it from here
            self._dir_made = False
            self._pushed.clear()


def choose_device(attached: list[AttachedDevice], serial: str | None) -> AttachedDevice:
    ready = [d for d in attached if d.state == "device"]
    if serial is not None:
        match = next((d for d in attached if d.serial == serial), None)
        if match is None:
            listed = ", ".join(d.serial for d in attached) or "none"
            raise DeviceError(f"Android device '{serial}' is not attached (attached: {listed})",
                              "check 'adb devices' and the cable")
        if match.state != "device":
            raise DeviceError(f"Android device '{serial}' is {match.state}", _state_hint(match.state))
        return match
    if not ready:
        if attached:
            d = attached[0]
            raise DeviceError(f"Android device '{d.serial}' is {d.state}", _state_hint(d.state))
        raise DeviceError("no Android device attached", "connect one with USB debugging on; 'adb devices' must list it")
    if len(ready) > 1:
        raise DeviceError(f"{len(ready)} Android devices attached",
                          f"pick one with --device adb:SERIAL ({', '.join(d.serial for d in ready)})")
    return ready[0]


def _state_hint(state: str) -> str:
    return {
        "unauthorized": "unlock the phone and accept the USB debugging prompt",
        "offline": "reconnect the cable or restart adb ('adb kill-server')",
    }.get(state, "check 'adb devices'")
