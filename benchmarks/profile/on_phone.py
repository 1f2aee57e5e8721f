"""Per-operator profiles on a phone: the runners' own profilers, traces pulled back and read on the host.

* ExecuTorch: ``executor_runner --etdump_path=trace.etdp`` (a runner built with
  ``EXECUTORCH_ENABLE_EVENT_TRACER``) writes an ETDump; it is read with
  ``executorch.devtools.Inspector`` (with the export's ETRecord when one is
  beside the artifact, so rows map back to graph nodes) and each event's median
  over the runs is summed per operator kind, as on the host.
* ONNX Runtime: ``onnxruntime_perf_test -p PREFIX`` writes ORT's profile JSON
  (``PREFIX_<date>.json``); its ``Node`` events after the tool's own first
  inference are summed per op type, per run, as on the host.

The result has the shape of the host profiler's (``benchmarks/profile/ops.py``)
so the same table and stacked bars show phone and host side by side.
"""

from __future__ import annotations

import shlex
import tempfile
import warnings
from pathlib import Path

from mobexport.errors import DeviceError, MissingDependencyError

from mobexport.devices.android import DEVICE_DIR, AndroidDevice, cpu_mask
from mobexport.devices.device import CaseFailed, CaseJob
from mobexport.devices.measure import MeasurePolicy

ETDUMP_NAME = "trace.etdp"
ORT_PROFILE_PREFIX = "ort_profile"


def profile_on_device(device: AndroidDevice, kind: str, artifact: Path, model: str, resolution: int, runs: int,
                      threads: int, etrecord: Path | None = None) -> dict:
    """One model's per-op profile on ``device`` (``kind``: onnx or executorch)."""
    if kind not in PHONE_PROFILERS:
        raise DeviceError(f"per-op profiles on a phone are for {' and '.join(PHONE_PROFILERS)} artifacts, not {kind}",
                          f"use --target {' or --target '.join(PHONE_PROFILERS)}")
    extra, collect = PHONE_PROFILERS[kind]
    job = CaseJob(kind=kind, model=model, resolution=resolution, threads=threads, artifact_path=artifact,
                  policy=MeasurePolicy())
    adb = device.connect()
    with device.pushed_artifact(job) as (runner, remote), tempfile.TemporaryDirectory() as tmp:
        mask = cpu_mask(device.cores_for(threads))
        adb.shell(f"rm -f {DEVICE_DIR}/{ETDUMP_NAME} {DEVICE_DIR}/{ORT_PROFILE_PREFIX}*")
        device.run_once(runner, remote, runs, threads, mask, extra_args=extra)
        ops = collect(adb, Path(tmp), runs, etrecord)
    return {"model": model, "resolution": resolution, "threads": threads, "runs": runs, "target": kind,
            "total_ms": sum(r["ms"] for r in ops.values()), "ops": ops, "device": device.info(),
            "etrecord": str(etrecord) if etrecord else None}


def _etdump_ops(adb, tmp: Path, runs: int, etrecord: Path | None) -> dict:
    """executor_runner --etdump_path: the ETDump pulled and read per op kind."""
    from .ops import etdump_per_op_kind

    local = tmp / ETDUMP_NAME
    adb.pull(f"{DEVICE_DIR}/{ETDUMP_NAME}", local)
    return etdump_per_op_kind(_etdump_events(local, etrecord))


def _ort_ops(adb, tmp: Path, runs: int, etrecord: Path | None) -> dict:
    """onnxruntime_perf_test -p: its JSON trace pulled and summed per op type, perf_test's own first run dropped."""
    from .ops import per_op_type, profile_events

    listing = adb.shell_ok(f"ls {DEVICE_DIR}").split()
    traces = sorted(n for n in listing if n.startswith(ORT_PROFILE_PREFIX) and n.endswith(".json"))
    if not traces:
        raise CaseFailed("onnxruntime_perf_test -p wrote no profile file")
    local = tmp / traces[-1]
    adb.pull(f"{DEVICE_DIR}/{traces[-1]}", local)
    adb.shell(f"rm -f {shlex.quote(f'{DEVICE_DIR}/{traces[-1]}')}")
    events = profile_events(local)
    per_run = len(events) // (runs + 1)                  # perf_test's own first inference, then the runs
    return per_op_type(events[per_run:], runs)


# artifact kind -> (the runner's profiling options, how its profile is read back)
PHONE_PROFILERS = {"executorch": ([f"--etdump_path={ETDUMP_NAME}"], _etdump_ops),
                   "onnx": (["-p", ORT_PROFILE_PREFIX], _ort_ops)}


def _etdump_events(etdump: Path, etrecord: Path | None) -> list[tuple[str, float]]:
    try:
        from executorch.devtools import Inspector
    except ImportError as exc:
        raise MissingDependencyError("executorch", "executorch", "reading an ETDump from the phone") from exc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inspector = Inspector(etdump_path=str(etdump), etrecord=str(etrecord) if etrecord else None)
        frame = inspector.to_dataframe()
    frame = frame[frame["event_block_name"] == "Execute"]
    return list(zip(frame["event_name"], frame["p50 (ms)"]))
