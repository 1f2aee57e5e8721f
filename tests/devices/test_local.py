"""The local device: one worker subprocess per case, clean peak memory, crashes contained."""

from __future__ import annotations

import os
import sys

import pytest

from mobexport.devices.device import CaseFailed, CaseJob
from mobexport.devices.local import LocalDevice
from mobexport.devices.measure import MeasurePolicy
from mobexport.errors import DeviceError

from .conftest import tiny_onnx

QUICK = MeasurePolicy(min_time_s=0.05, min_iters=8, max_iters=200, warmup_time_s=0.01, min_warmup=2)


def test_measures_in_a_pinned_subprocess(tmp_path):
    model = tiny_onnx(tmp_path / "model.onnx", resolution=32)
    m = LocalDevice(cpus=[0]).measure(CaseJob(kind="onnx", model="tiny", resolution=32, threads=1,
                                              artifact_path=model, policy=QUICK))
    assert QUICK.min_iters <= len(m.samples_s) <= QUICK.max_iters and m.warmup >= QUICK.min_warmup
    assert all(0 < s < 1 for s in m.samples_s) and m.init_s > 0
    c = m.conditions
    assert c["pid"] != os.getpid()                                   # measured in another process
    assert c["affinity"] == [0] and c["threads_applied"] == "runner.threads"
    assert c["peak_memory"] == "peak RSS above idle runtime baseline"
    assert c["baseline_rss_bytes"] > 0 and c["peak_rss_bytes"] >= c["baseline_rss_bytes"]
    assert m.peak_memory_bytes == c["peak_rss_bytes"] - c["baseline_rss_bytes"] > 0
    assert "onnxruntime" in m.tool_versions


def test_a_crashing_worker_fails_only_its_case(tmp_path):
    crasher = tmp_path / "crash.py"
    crasher.write_text("import ctypes, sys\nprint('about to crash', file=sys.stderr)\nctypes.string_at(0)\n")
    device = LocalDevice(worker_command=[sys.executable, str(crasher)])
    with pytest.raises(CaseFailed, match=r"worker crashed \(SIGSEGV\): about to crash"):
        device.measure(CaseJob(kind="onnx", model="tiny", resolution=32, artifact_path=tmp_path / "x.onnx"))


def test_a_runtime_error_is_reported_from_the_worker(tmp_path):
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"not a protobuf")
    with pytest.raises(CaseFailed, match="ONNXRuntimeError"):
        LocalDevice().measure(CaseJob(kind="onnx", model="tiny", resolution=32, artifact_path=broken, policy=QUICK))


def test_unknown_cpus_are_refused():
    with pytest.raises(DeviceError, match="CPU\\(s\\) 4096 are not usable here"):
        LocalDevice(cpus=[4096])


def test_describes_this_host():
    info = LocalDevice().info()
    assert info["name"] == "local" and info["cores"] == os.cpu_count() and info["cpu"]
    assert LocalDevice().available()
