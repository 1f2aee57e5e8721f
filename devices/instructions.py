"""Instructions one inference executes, counted by valgrind's callgrind: a cost that ignores the neighbours.

Wall time on a shared 2-core machine moves 7-10% from one process to the
next; the number of instructions a CPU executes for one inference does not
depend on what else runs. Hardware counters are not readable here
(``perf stat`` says "not supported"), so callgrind, which executes the
program on a synthetic CPU and counts every guest instruction, is the counter.

How one inference is isolated (startup excluded). The worker (``python -m
mobexport.devices.instructions``, started under callgrind) loads the artifact
with one thread, then calls ``os.getppid()`` before each inference and once
after the last; callgrind is started with ``--dump-before=getppid``, so it
writes its counters out and resets them each time that libc function is
entered. Every dump but the first and the last thus holds exactly one
inference (plus a constant few thousand instructions of the Python loop); the
first holds the start-up (interpreter, imports, session creation), the last
the teardown. Why this and not the alternatives:

* ``--toggle-collect`` on the runtime's run function needs its symbol, and
  the pip wheels of ONNX Runtime and ExecuTorch export none (``nm -D`` lists
  two symbols for ONNX Runtime's Python module);
* differencing two processes (N and N+k inferences) pays the start-up twice
  (0.6-0.8 G instructions, most of a minute under callgrind) and adds the two
  start-ups' differences to the result;
* callgrind's client requests need ``valgrind.h`` compiled into the process;
* ``getppid`` is a libc call no runtime makes while it runs a model, and the
  worker checks that it saw exactly as many dumps as it made calls.

Start-up (0.6-0.8 G instructions: interpreter, imports, session creation)
would cost most of a minute of CPU per case under callgrind. So callgrind
starts with ``--instr-atstart=no`` and the worker, once loaded, switches
instrumentation on with ``callgrind_control -i on PID`` (through vgdb; it
returns once the switch is made, before the first marker), so start-up runs
several times faster and uncounted. Where that is refused (vgdb needs
ptrace), the case is rerun instrumented from the start; the counts of the
inferences are the same either way (``instrumented_from`` says which ran).

Warm-up inferences (the first one allocates ONNX Runtime's arena: about 12%
more) are counted and dropped; the median of the measured ones is the count.

Run-to-run spread, measured here under a load average of 13-15 on 2 cores
(ONNX Runtime 1.32): MobileNetV3-Small 0.75 at 96 px, 5,160,102 to 5,176,063
instructions per inference (0.26%) in one run and 5,162,059 to 5,171,873
(0.19%, median 5,166,361) in another; Mobile-Former 52M at 192 px 0.35%,
MobileNetV3-Large at 192 px 0.019%; ExecuTorch 1.5.1 (XNNPACK), MobileNetV3-Small
0.75 at 96 px: 5,321,273 to 5,321,924 (0.012%). The ONNX Runtime library's own share
repeats to within 0.1%; what moves is glibc: ``malloc``'s free lists and
``memcpy``'s alignment paths depend on addresses. Not bit-identical, then,
but well below a 2% threshold and two orders of magnitude below wall time's
spread; each measurement records its own spread (``spread`` below).

What the count does not see: memory stalls, cache misses, frequency and
threading (see docs/regression.md). Valgrind's synthetic CPU offers AVX2 but
not AVX-512, so runtimes pick their AVX2 kernels under it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mobexport.errors import DeviceError, MobexportError

CONTROL_ENV = "MOBEXPORT_CALLGRIND_CONTROL"  # the worker switches instrumentation on with this, once loaded
EXIT_NO_CONTROL = 17                          # ... and exits with this when it cannot
MARKER_FUNCTION = "getppid"   # entered before each inference: callgrind dumps and resets its counters there
DEFAULT_WARMUP = 1
DEFAULT_ITERS = 3
DEFAULT_TIMEOUT_S = 1800.0
KINDS = ("onnx", "executorch")
VALGRIND_HINT = "install valgrind (Debian/Ubuntu: sudo apt-get install valgrind; macOS is not supported by valgrind)"
RUNTIME_PACKAGES = {"onnx": "onnxruntime", "executorch": "executorch"}


# Counts run in worker threads of a sweep; an interrupted sweep stops them all (stop_counting).
_RUNNING: set[subprocess.Popen] = set()
_RUNNING_LOCK = threading.Lock()


def stop_counting() -> None:
    """Kill every callgrind process this process started that is still running (an interrupted sweep)."""
    with _RUNNING_LOCK:
        running = list(_RUNNING)
    for proc in running:
        if proc.poll() is None:
            proc.kill()


class ValgrindMissingError(MobexportError):
    """valgrind (callgrind) is not installed: instruction counts cannot be taken here."""


@dataclass(frozen=True)
class InstructionCount:
    """Instructions of one inference: ``median`` over ``samples`` (one per measured inference)."""

    median: int
    samples: tuple[int, ...]
    startup: int                        # instructions counted before the first inference (see instrumented_from)
    warmup: int                         # inferences run and dropped before the measured ones
    instrumented_from: str = "start"    # "start": all of start-up counted; "load": start-up ran uninstrumented
    counter: str = "callgrind"
    tool_versions: dict = field(default_factory=dict)

    @property
    def spread(self) -> float:
        """(max - min) / median of the measured inferences: the count's own noise."""
        return (max(self.samples) - min(self.samples)) / self.median if self.median else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["samples"] = list(self.samples)
        d["spread"] = round(self.spread, 6)
        return d


def valgrind_executable() -> str:
    """The valgrind on PATH, or a one-line error with the install hint (exit 2)."""
    found = shutil.which("valgrind")
    if found is None:
        raise ValgrindMissingError("instruction counts need valgrind (callgrind), which is not on PATH", VALGRIND_HINT)
    return found


def valgrind_version(executable: str | None = None) -> str:
    executable = executable or valgrind_executable()
    try:
        text = subprocess.run([executable, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise ValgrindMissingError(f"valgrind at '{executable}' does not run ({exc})", VALGRIND_HINT) from None
    return text.strip().removeprefix("valgrind-") or "unknown"


def runtime_version(kind: str) -> str | None:
    """The installed version of the runtime that runs ``kind`` artifacts, read without importing it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(RUNTIME_PACKAGES[kind])
    except (PackageNotFoundError, KeyError):
        return None


def counter_versions(kinds=KINDS) -> dict:
    """Versions that decide an instruction count: valgrind's and each runtime's."""
    versions = {"valgrind": valgrind_version()}
    for kind in kinds:
        versions[RUNTIME_PACKAGES[kind]] = runtime_version(kind)
    return versions


def callgrind_command(out_file: Path, valgrind: str) -> list[str]:
    return [valgrind, "--tool=callgrind", f"--dump-before={MARKER_FUNCTION}", f"--callgrind-out-file={out_file}",
            "--separate-threads=yes", "--dump-instr=no", "--dump-line=no", "--compress-strings=yes"]


def count_instructions(kind: str, artifact: Path, resolution: int, batch: int = 1, warmup: int = DEFAULT_WARMUP,
                       iters: int = DEFAULT_ITERS, timeout_s: float = DEFAULT_TIMEOUT_S) -> InstructionCount:
    """Run ``artifact`` under callgrind at one thread and count the instructions of each inference.

    Raises :class:`ValgrindMissingError` without valgrind, :class:`DeviceError`
    when the worker fails (its last line of stderr says why).
    """
    if kind not in KINDS:
        raise DeviceError(f"instruction counts are taken for {', '.join(KINDS)} artifacts, not '{kind}'",
                          "measure latency for this target instead (--metric latency)")
    if warmup < 0 or iters < 1:
        raise DeviceError(f"need warmup >= 0 and iters >= 1 (got {warmup}, {iters})", "e.g. warmup 1, iters 3")
    valgrind = valgrind_executable()
    versions = {"valgrind": valgrind_version(valgrind), RUNTIME_PACKAGES[kind]: runtime_version(kind)}
    worker = [sys.executable, "-m", __name__, kind, str(Path(artifact).resolve()), str(resolution), str(batch),
              str(warmup + iters)]
    control = shutil.which("callgrind_control")
    parts = _callgrind_run(valgrind, worker, timeout_s, artifact, control) if control else None
    instrumented_from = "load"
    if parts is None:  # the worker could not switch instrumentation on: instrument from the start instead
        parts = _callgrind_run(valgrind, worker, timeout_s, artifact, None)
        instrumented_from = "start"
    expected = warmup + iters + 2  # start-up, one per inference, teardown
    if len(parts) != expected:
        raise DeviceError(f"callgrind wrote {len(parts)} dumps where {expected} were expected: something else called "
                          f"{MARKER_FUNCTION}() during the inferences", "report this with the artifact")
    per_inference = parts[1:-1]
    measured = tuple(per_inference[warmup:])
    return InstructionCount(median=_median(measured), samples=measured, startup=parts[0], warmup=warmup,
                            instrumented_from=instrumented_from, tool_versions=versions)


def _callgrind_run(valgrind: str, worker: list[str], timeout_s: float, artifact: Path,
                   control: str | None) -> list[int] | None:
    """One worker under callgrind; the main thread's instructions per dump, or None when ``control`` was
    given and the worker could not use it to switch instrumentation on (ptrace refused, say)."""
    with tempfile.TemporaryDirectory(prefix="mobexport-callgrind-") as tmp:
        out_file = Path(tmp) / "callgrind.out"
        # One thread everywhere, and no hash randomisation: the same work in every run.
        env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
        command = callgrind_command(out_file, valgrind)
        if control:
            command.append("--instr-atstart=no")
            env[CONTROL_ENV] = control
        else:
            env.pop(CONTROL_ENV, None)
        proc = subprocess.Popen([*command, *worker], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env, cwd=tmp)
        with _RUNNING_LOCK:
            _RUNNING.add(proc)
        try:
            _, stderr = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise DeviceError(f"callgrind did not finish within {timeout_s:.0f} s", "raise the case timeout") from None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            with _RUNNING_LOCK:
                _RUNNING.discard(proc)
        if control and proc.returncode == EXIT_NO_CONTROL:
            return None
        if proc.returncode != 0:
            tail = [line for line in stderr.splitlines() if line.strip() and not line.startswith("==")]
            why = tail[-1][:300] if tail else f"exit status {proc.returncode}"
            raise DeviceError(f"the instruction-count worker failed on '{Path(artifact).name}': {why}",
                              "run the artifact with 'mobexport bench --metric latency' to see the runtime's error")
        return read_dumps(out_file)


_TOTAL = re.compile(r"^(?:summary|totals):\s*(\d+)", re.MULTILINE)
_PART = re.compile(r"^part:\s*(\d+)", re.MULTILINE)
_THREAD = re.compile(r"^thread:\s*(\d+)", re.MULTILINE)
MAIN_THREAD = 1


def read_dumps(out_file: Path) -> list[int]:
    """Instructions of the main thread in each callgrind dump, in order.

    With ``--separate-threads=yes`` callgrind writes ``FILE.<part>-<thread>``
    (the final dump: ``FILE-<thread>``); only thread 1, which runs the
    inference at one thread, is read. Other threads (a runtime's idle pool, a
    library's helper) get time slices that depend on the host's load, so
    their instructions would make the count depend on it (seen: one
    inference 6% above the others on a loaded machine).
    """
    parts: dict[int, int] = {}
    for path in Path(out_file).parent.glob(Path(out_file).name + "*"):
        text = path.read_text(errors="replace")
        if not text.strip():
            continue  # the per-process file callgrind leaves empty when threads are separated
        total, part, thread = _TOTAL.search(text), _PART.search(text), _THREAD.search(text)
        if total is None or part is None:
            raise DeviceError(f"callgrind output '{path.name}' has no totals", "check the valgrind installation")
        if thread is None or int(thread.group(1)) == MAIN_THREAD:
            parts[int(part.group(1))] = int(total.group(1))
    return [parts[k] for k in sorted(parts)]


def _median(values) -> int:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) // 2


# ---- the worker: runs inside callgrind, imports only the runtime it needs ----

def _onnxruntime_infer(path: str, x):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feeds = {session.get_inputs()[0].name: x}
    return lambda: session.run(None, feeds)


def _executorch_infer(path: str, x):
    import torch
    from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
    from executorch.runtime import Runtime

    torch.set_num_threads(1)
    _unsafe_reset_threadpool(1)
    method = Runtime.get().load_program(path).load_method("forward")
    inputs = [torch.from_numpy(x)]
    return lambda: method.execute(inputs)


def worker(kind: str, path: str, resolution: int, batch: int, inferences: int) -> None:
    """Load, then ``getppid(); infer()`` per inference and one ``getppid()`` after: the dump boundaries."""
    import gc

    import numpy as np

    x = np.random.default_rng(0).standard_normal((batch, 3, resolution, resolution)).astype(np.float32)
    infer = {"onnx": _onnxruntime_infer, "executorch": _executorch_infer}[kind](path, x)
    control = os.environ.get(CONTROL_ENV)
    if control:  # started with --instr-atstart=no: start-up ran uninstrumented (several times faster)
        import subprocess

        switched = subprocess.run([control, "-i", "on", str(os.getpid())], capture_output=True, text=True)
        if switched.returncode != 0:
            sys.exit(EXIT_NO_CONTROL)
    gc.disable()  # a collection would land in one inference and not another
    for _ in range(inferences):
        os.getppid()
        infer()
    os.getppid()


def main(argv: list[str]) -> int:
    kind, path, resolution, batch, inferences = argv
    worker(kind, path, int(resolution), int(batch), int(inferences))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
