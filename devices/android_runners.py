"""The native benchmark binaries mobexport drives on a phone, and how to read them.

* ExecuTorch's ``executor_runner`` (``examples/portable/executor_runner``):
  ``--model_path=M --num_executions=N [--cpu_threads=T]``; logs
  ``Model loaded in X ms.``, one ``Iteration i of N: X ms`` per execution
  (recent builds) and ``Model executed successfully N time(s) in X ms.``.
* ONNX Runtime's ``onnxruntime_perf_test``:
  ``-e cpu -m times -r N -I [-x T] MODEL RESULT_FILE``; prints
  ``Session creation time cost: X s`` and ``First inference time cost: N ms``
  and writes one ``model,seconds,peak_bytes,cpu%,run`` line per run to RESULT_FILE.
* LiteRT's ``benchmark_model`` (``tflite/tools/benchmark``):
  ``--graph=M --num_threads=T --warmup_runs=W --num_runs=N --use_xnnpack=true``;
  logs one ``count=N first=US curr=US min=US max=US avg=US std=US`` line per
  phase (warm-up, then the timed runs) and ``Inference timings in us: Init: X,
  First inference: Y, ...``. It prints no per-run times: a case gets the timed
  phase's mean as one sample, its min/max/std in a note.

A binary must match the phone's ABI: its ELF header is checked before it is
pushed. A script (``#!``) is accepted as is (a runner wrapped in a shell script).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from mobexport.errors import DeviceError

DOCS = "see docs/benchmarking.md, 'Building the Android runners'"

# ELF e_machine per Android ABI.
ABI_ELF_MACHINE = {"arm64-v8a": 183, "armeabi-v7a": 40, "armeabi": 40, "x86_64": 62, "x86": 3}
ELF_MACHINE_NAMES = {183: "arm64-v8a (aarch64)", 40: "armeabi-v7a (32-bit ARM)", 62: "x86_64", 3: "x86"}


def elf_machine(head: bytes) -> int | None:
    """e_machine of an ELF header, None if ``head`` is not ELF."""
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    order = "little" if head[5] == 1 else "big"
    return int.from_bytes(head[18:20], order)


def check_binary(path: Path, abi: str, what: str, flag: str) -> None:
    """Refuse a missing runner, a non-executable, or one built for another ABI."""
    path = Path(path)
    if not path.is_file():
        raise DeviceError(f"{what} '{path}' does not exist", f"build it and pass {flag} PATH ({DOCS})")
    with open(path, "rb") as f:
        head = f.read(64)
    if head.startswith(b"#!"):
        return
    machine = elf_machine(head)
    if machine is None:
        raise DeviceError(f"{what} '{path}' is not an executable (no ELF header)", f"pass the built binary ({DOCS})")
    expected = ABI_ELF_MACHINE.get(abi)
    if expected is not None and machine != expected:
        built = ELF_MACHINE_NAMES.get(machine, f"ELF machine {machine}")
        raise DeviceError(f"{what} '{path}' is built for {built}, but the device's ABI is {abi}",
                          f"rebuild it with -DANDROID_ABI={abi} ({DOCS})")


@dataclass
class RunnerOutput:
    """What one invocation of a runner binary reported."""

    samples_s: list[float]
    per_iteration: bool               # False: one mean over the run (older executor_runner)
    load_s: float | None = None       # model load / session creation
    first_s: float | None = None      # a first inference the runner ran and timed apart
    reported_peak_bytes: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def init_s(self) -> float | None:
        """Load plus first inference, the same definition as the local devices."""
        if self.load_s is None:
            return None
        if self.first_s is not None:
            return self.load_s + self.first_s
        if self.samples_s and self.per_iteration:
            return self.load_s + self.samples_s[0]
        return None


class AndroidRunner(ABC):
    kind: str             # the artifact kind it runs
    binary: str           # its name on the device
    flag: str             # the CLI option giving its host path
    env: str              # the environment variable giving its host path
    description: str
    writes_result_file = False   # True: per-run times are in result.txt, read after the run

    @abstractmethod
    def argv(self, model: str, executions: int, threads: int, result_file: str,
             extra: list[str] | tuple = ()) -> list[str]:
        """The command line, relative to the runner's directory on the device; ``extra``: more of its options."""

    @abstractmethod
    def parse(self, log: str, result_text: str, executions: int) -> RunnerOutput:
        """Samples and facts from the runner's log (and result file); ValueError if unreadable."""

    def provider_args(self, execution_provider: str) -> list[str]:
        """Options that select ``--ep`` (only ONNX Runtime has execution providers)."""
        return []

    def provider_conditions(self, execution_provider: str) -> dict:
        """What a record says about the execution provider it ran on."""
        return {}

    def failure(self, log: str, where: str) -> Exception | None:
        """A one-line error when a failed run's ``log`` says the runner lacks an engine, else None."""
        return None

    def refuses(self, manifest: dict | None, where: str) -> Exception | None:
        """A one-line error when the artifact cannot run on an Android phone at all, else None."""
        return None


_FLOAT = r"([0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?)"


class ExecutorRunner(AndroidRunner):
    kind = "executorch"
    binary = "executor_runner"
    flag = "--executor-runner"
    env = "MOBEXPORT_EXECUTOR_RUNNER"
    description = "ExecuTorch executor_runner"

    def argv(self, model: str, executions: int, threads: int, result_file: str,
             extra: list[str] | tuple = ()) -> list[str]:
        argv = [f"./{self.binary}", f"--model_path={model}", f"--num_executions={executions}"]
        if threads > 0:
            argv.append(f"--cpu_threads={threads}")
        return argv + list(extra)

    def parse(self, log: str, result_text: str, executions: int) -> RunnerOutput:
        total = re.search(rf"Model executed successfully (\d+) time\(s\) in {_FLOAT} ms", log)
        if total is None:
            raise ValueError("executor_runner printed no 'Model executed successfully' line")
        loaded = re.search(rf"Model loaded in {_FLOAT} ms", log)
        load_s = float(loaded.group(1)) / 1000 if loaded else None
        iterations = [float(m.group(1)) / 1000 for m in re.finditer(rf"Iteration \d+ of \d+: {_FLOAT} ms", log)]
        runs = int(total.group(1))
        if iterations and len(iterations) == runs:
            return RunnerOutput(iterations, True, load_s)
        mean = float(total.group(2)) / 1000 / max(runs, 1)
        return RunnerOutput([mean], False, load_s,
                            notes=["executor_runner logs no per-iteration times: one sample is the run's mean"])

    def failure(self, log: str, where: str) -> Exception | None:
        from .runtimes.executorch import DELEGATE_RUNTIMES, cannot_run_here

        unregistered = re.search(r"Backend (\w+) is not registered", log)
        delegate = next((b for b, d in DELEGATE_RUNTIMES.items() if unregistered and d[0] == unregistered.group(1)),
                        None)
        return cannot_run_here(delegate, f"the executor_runner on {where}") if delegate else None

    def refuses(self, manifest: dict | None, where: str) -> Exception | None:
        from .runtimes.executorch import cannot_run_here

        backend = ((manifest or {}).get("target_details") or {}).get("backend")
        return cannot_run_here("coreml", where) if backend == "coreml" else None   # Apple devices only


class OrtPerfTest(AndroidRunner):
    kind = "onnx"
    binary = "onnxruntime_perf_test"
    flag = "--ort-perf-test"
    env = "MOBEXPORT_ORT_PERF_TEST"
    description = "ONNX Runtime onnxruntime_perf_test"
    writes_result_file = True

    def argv(self, model: str, executions: int, threads: int, result_file: str,
             extra: list[str] | tuple = ()) -> list[str]:
        extra = list(extra)
        ep = "cpu"
        if "-e" in extra:                                   # an execution provider chosen by the caller
            at = extra.index("-e")
            ep = extra[at + 1]
            del extra[at:at + 2]
        argv = [f"./{self.binary}", "-e", ep, "-m", "times", "-r", str(executions), "-I"]
        if threads > 0:
            argv += ["-x", str(threads)]
        return argv + extra + [model, result_file]

    def parse(self, log: str, result_text: str, executions: int) -> RunnerOutput:
        samples = []
        for line in result_text.splitlines():
            parts = line.strip().split(",")
            if len(parts) >= 5:
                try:
                    samples.append(float(parts[1]))
                except ValueError:
                    continue
        if not samples:
            raise ValueError("onnxruntime_perf_test wrote no per-run times to its result file")
        session = re.search(rf"Session creation time cost: {_FLOAT} s", log)
        first = re.search(rf"First inference time cost: {_FLOAT} ms", log)
        peak = re.search(r"Peak working set size: (\d+) bytes", log)
        # perf_test runs one inference of its own before the timed ones: that is the first inference.
        return RunnerOutput(samples, True,
                            load_s=float(session.group(1)) if session else None,
                            first_s=float(first.group(1)) / 1000 if first else None,
                            reported_peak_bytes=int(peak.group(1)) if peak else None)

    def provider_args(self, execution_provider: str) -> list[str]:
        return ["-e", execution_provider] if execution_provider != "cpu" else []

    def provider_conditions(self, execution_provider: str) -> dict:
        return {"ort_execution_provider": execution_provider}

    def failure(self, log: str, where: str) -> Exception | None:
        missing = missing_execution_provider(log)
        if not missing:
            return None
        return DeviceError(f"cannot run here: the onnxruntime_perf_test on {where} has no "
                           f"{missing.upper()} execution provider",
                           f"needs a build with {ORT_EP_BUILD_FLAGS.get(missing, '--use_' + missing)} "
                           f"(and a phone that has the engine); or use --ep cpu")


class BenchmarkModel(AndroidRunner):
    kind = "litert"
    binary = "benchmark_model"
    flag = "--benchmark-model"
    env = "MOBEXPORT_BENCHMARK_MODEL"
    description = "LiteRT benchmark_model"

    def argv(self, model: str, executions: int, threads: int, result_file: str,
             extra: list[str] | tuple = ()) -> list[str]:
        # One untimed warm-up run: the harness runs its own warm-up executions and counts them in ``executions``.
        argv = [f"./{self.binary}", f"--graph={model}", "--warmup_runs=1", f"--num_runs={executions}",
                "--min_secs=0", "--warmup_min_secs=0", "--use_xnnpack=true"]
        if threads > 0:
            argv.append(f"--num_threads={threads}")
        return argv + list(extra)

    def parse(self, log: str, result_text: str, executions: int) -> RunnerOutput:
        phases = list(re.finditer(rf"count=(\d+) first={_FLOAT} curr={_FLOAT} min={_FLOAT} max={_FLOAT} "
                                  rf"avg={_FLOAT} std={_FLOAT}", log))
        if not phases:
            raise ValueError("benchmark_model printed no 'count=... avg=...' line")
        timed = phases[-1]  # warm-up first, the timed runs last
        count, avg_us = int(timed.group(1)), float(timed.group(6))
        timings = re.search(rf"Init: {_FLOAT}, First inference: {_FLOAT}", log)
        peak = re.search(rf"peak memory footprint \(MB\)[^:]*: {_FLOAT}", log)
        return RunnerOutput([avg_us / 1e6], False,
                            load_s=float(timings.group(1)) / 1e6 if timings else None,
                            first_s=float(timings.group(2)) / 1e6 if timings else None,
                            reported_peak_bytes=int(float(peak.group(1)) * 2**20) if peak else None,
                            notes=[f"benchmark_model logs no per-run times: one sample is the mean of {count} runs "
                                   f"(min {float(timed.group(4)) / 1000:.3f} ms, max {float(timed.group(5)) / 1000:.3f} "
                                   f"ms, std {float(timed.group(7)) / 1000:.3f} ms)"])


# onnxruntime_perf_test -e NAME: the Android-relevant execution providers, and the build flag each needs.
ORT_EXECUTION_PROVIDERS = ("cpu", "xnnpack", "nnapi", "qnn")
ORT_EP_BUILD_FLAGS = {"xnnpack": "--use_xnnpack", "nnapi": "--use_nnapi", "qnn": "--use_qnn"}
_EP_MISSING = re.compile(r"(\w+) is not supported in this build", re.IGNORECASE)


def missing_execution_provider(log: str) -> str | None:
    """The EP name when onnxruntime_perf_test says its build lacks it, else None."""
    match = _EP_MISSING.search(log)
    return match.group(1).lower() if match else None


RUNNERS: dict[str, AndroidRunner] = {r.kind: r for r in (ExecutorRunner(), OrtPerfTest(), BenchmarkModel())}
