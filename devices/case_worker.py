"""Measure one case in this process, then exit: ``python -m mobexport.devices.case_worker JOB RESULT``.

The local and CUDA devices start one of these per case, so that peak memory
is this case's alone, runtimes cannot slow each other down (ONNX Runtime's
spinning worker threads do), and a crash ends this process, not the sweep.

JOB is a JSON file ``{"job": CaseJob, "device": "cpu"|"cuda"|Core ML units,
"cpus": [..]|null}``; RESULT is written atomically, with ``"ok": false`` and
the error when the case fails in a way Python can still report.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from mobexport.errors import first_line
from mobexport.shapes import Resolution

from .device import EAGER, CaseJob
from .measure import time_adaptively
from .memory import current_rss_bytes, peak_rss_bytes, reset_peak
from .runtimes import kind_of, open_runner, runtime

EXIT_CASE_ERROR = 3


def artifact_kind(job: CaseJob) -> str:
    """The kind of artifact the job runs (the manifest says; eager PyTorch has none)."""
    return EAGER if job.kind == EAGER else kind_of(job.artifact_path, job.manifest)


def build_runner(job: CaseJob, device: str):
    """A runner for the job, not yet activated; (runner, how threads were applied)."""
    if job.kind == EAGER:
        from .runtimes.torch import EagerTorchRunner

        return EagerTorchRunner(job.model, job.resolution, threads=job.threads), "torch.set_num_threads"
    runner = open_runner(job.artifact_path, job.manifest, device=device, kind=artifact_kind(job))
    if job.threads <= 0:
        return runner, "runtime default"
    if hasattr(runner, "threads"):
        runner.threads = job.threads
        return runner, "runner.threads"
    return runner, "not settable on this runner"


def run(spec: dict) -> dict:
    job = CaseJob.from_dict(spec["job"])
    cpus = spec.get("cpus")
    if cpus:
        os.sched_setaffinity(0, set(cpus))
    # The runtime's package is imported before the idle baseline is read.
    importlib.import_module(runtime(artifact_kind(job)).package)
    size = Resolution.of(job.resolution)
    x = np.random.default_rng(0).standard_normal(size.input_shape(job.batch)).astype(np.float32)
    runner, threads_applied = build_runner(job, spec.get("device", "cpu"))

    baseline = current_rss_bytes()
    peak_was_reset = reset_peak()
    started = time.perf_counter()
    with runner:
        runner.infer(x)
        init_s = time.perf_counter() - started
        timing = time_adaptively(lambda n: runner.time(x, 0, n), job.policy)
        peak, peak_source = peak_rss_bytes()
        runtime_memory = runner.memory()
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    above = peak - baseline if baseline is not None and peak_was_reset else None
    return {
        "ok": True,
        "samples_s": timing.samples_s,
        "warmup": timing.warmup,
        "init_s": init_s,
        "peak_memory_bytes": max(above, 0) if above is not None else peak,
        "conditions": {
            "peak_memory": "peak RSS above idle runtime baseline" if above is not None else f"whole-process peak ({peak_source})",
            "baseline_rss_bytes": baseline,
            "peak_rss_bytes": peak,
            "affinity": affinity,
            "threads_applied": threads_applied,
            "warmup_s": round(timing.warmup_s, 6),
            "runtime_memory": runtime_memory,
            "pid": os.getpid(),
        },
    }


def write_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


PR_SET_PDEATHSIG = 1
PARENT_PID_ENV = "MOBEXPORT_CASE_PARENT_PID"


def die_with_parent() -> None:
    """Ask the kernel for SIGKILL when the sweep that started us dies (SIGKILL, SIGTERM, a crash).

    A timing worker left running would load the CPU under every later
    measurement. Linux only (prctl); elsewhere the sweep's own cleanup is
    what stops it. If the parent died before the request, exit now.
    """
    expected = os.environ.get(PARENT_PID_ENV)
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if expected and expected.isdigit() and os.getppid() != int(expected):
        sys.exit(EXIT_CASE_ERROR)


def main(argv: list[str]) -> int:
    die_with_parent()
    job_path, result_path = Path(argv[0]), Path(argv[1])
    spec = json.loads(job_path.read_text())
    try:
        result = run(spec)
    except Exception as exc:  # the case failed; the parent records why
        write_atomic(result_path, {"ok": False, "error": f"{type(exc).__name__}: {first_line(exc, 400)}",
                                   "traceback": traceback.format_exc()[-4000:]})
        return EXIT_CASE_ERROR
    write_atomic(result_path, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
