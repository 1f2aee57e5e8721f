"""Sweeps: one record per case, a crashing case recorded as failed while the sweep goes on,
resume after an interruption, and a phone that disconnects mid-sweep."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from mobexport.benchmarks.sweep.artifacts import Prepared
from mobexport.benchmarks.sweep.plan import SweepPlan
from mobexport.benchmarks.results.records import read_records
from mobexport.benchmarks.sweep.run import run_sweep
from mobexport.devices.android import AndroidDevice
from mobexport.devices.device import DeviceDisconnectedError
from mobexport.devices.local import LocalDevice
from mobexport.devices.measure import MeasurePolicy
from mobexport.errors import ExportError
from mobexport.export.artifact import Artifact
from mobexport.manifest import Manifest, sha256_tree

from ...devices.adbd import PhoneSpec
from ...devices.conftest import phone, phones, runner_binaries, tiny_onnx  # noqa: F401  (fixtures)

QUICK = MeasurePolicy(min_time_s=0.03, min_iters=5, max_iters=100, warmup_time_s=0.0, min_warmup=2)


class FakeExporter:
    """Stands in for the export pipeline: a tiny ONNX artifact per resolution, or an export error."""

    def __init__(self, root: Path, fail_at: set[int] = frozenset()):
        self.root, self.fail_at, self.calls = root, set(fail_at), []

    def __call__(self, case, out_dir, on_step=None) -> Prepared:
        self.calls.append(case)
        if case.resolution in self.fail_at:
            raise ExportError("torch.export could not trace tiny", "run with --debug")
        directory = self.root / f"r{case.resolution}"
        path = tiny_onnx(directory / "model.onnx", resolution=case.resolution)
        manifest = Manifest(model={"name": case.model}, target="onnx",
                            artifact={"file": "model.onnx", "size_bytes": path.stat().st_size,
                                      "sha256": sha256_tree(path)},
                            resolution={"export": case.resolution, "dynamic": False},
                            macs={"total_macs": case.resolution**2 * 432}, params=650)
        manifest.write(directory)
        return Prepared(case, Artifact(directory, manifest), case.resolution**2 * 432, 650)


def crashing_worker(tmp_path: Path, resolution: int) -> list[str]:
    """The real worker, except that a case at ``resolution`` segfaults."""
    script = tmp_path / "crashing_worker.py"
    script.write_text(textwrap.dedent(f"""
        import ctypes, json, runpy, sys
        if json.load(open(sys.argv[1]))["job"]["resolution"] == {resolution}:
            ctypes.string_at(0)
        runpy.run_module("mobexport.devices.case_worker", run_name="__main__")
    """))
    return [sys.executable, str(script)]


def plan(resolutions, device="local"):
    return SweepPlan(models=["tiny"], targets=["onnx"], resolutions=list(resolutions), device=device)


def test_failures_are_recorded_the_sweep_goes_on_and_resume_retries_them(tmp_path):
    out = tmp_path / "bench"
    exporter = FakeExporter(tmp_path / "artifacts", fail_at={32})
    device = LocalDevice(worker_command=crashing_worker(tmp_path, 24))
    outcome = run_sweep(plan([16, 24, 32]), device, out, QUICK, prepare_case=exporter)

    records = {r.case.resolution: r for r in read_records(out / "results.jsonl")}
    assert sorted(records) == [16, 24, 32] and len(read_records(out / "results.jsonl")) == 3
    assert records[16].status == "ok" and records[16].iters == len(records[16].samples_ms) >= QUICK.min_iters
    assert records[16].latency_ms["median"] > 0 and records[16].macs == 16**2 * 432
    assert records[16].throughput_ips == pytest.approx(1000 / records[16].latency_ms["median"])
    assert records[16].device_info["name"] == "local" and records[16].conditions["policy"]["min_iters"] == 5
    assert records[16].peak_memory_bytes > 0 and records[16].init_ms > 0
    assert records[24].status == "failed" and "worker crashed (SIGSEGV)" in records[24].error
    assert records[32].status == "failed" and records[32].error.startswith("export failed: ExportError")
    assert [c.resolution for c in outcome.measured] == [16]

    # Resume with a healthy worker and exporter: only the failed cases run again.
    exporter = FakeExporter(tmp_path / "artifacts")
    outcome = run_sweep(plan([16, 24, 32]), LocalDevice(), out, QUICK, prepare_case=exporter)
    assert outcome.skipped == 1 and sorted(c.resolution for c in exporter.calls) == [24, 32]
    statuses = [(r.case.resolution, r.status) for r in read_records(out / "results.jsonl")]
    assert sorted(statuses[:3]) == [(16, "ok"), (24, "failed"), (32, "failed")]
    assert sorted(statuses[3:]) == [(24, "ok"), (32, "ok")]

    # Everything measured: a third run does nothing.
    assert run_sweep(plan([16, 24, 32]), LocalDevice(), out, QUICK, prepare_case=exporter).skipped == 3


def test_cases_are_shuffled_reproducibly():
    cases = SweepPlan(models=["a", "b"], targets=["onnx", "executorch"], resolutions=[128, 160, 192]).cases()
    again = SweepPlan(models=["a", "b"], targets=["onnx", "executorch"], resolutions=[128, 160, 192]).cases()
    listed = SweepPlan(models=["a", "b"], targets=["onnx", "executorch"], resolutions=[128, 160, 192],
                       seed=None).cases()
    assert cases == again and sorted(cases, key=str) == sorted(listed, key=str) and cases != listed
    assert len(set(cases)) == 12


def test_a_phone_that_disconnects_keeps_the_finished_cases(phones, tmp_path):  # noqa: F811
    emulated = phones.add(PhoneSpec.from_fixture(disconnect_on_run=3))   # it hangs up as case 2's probe run starts
    out = tmp_path / "bench"
    device = AndroidDevice(runners=runner_binaries(tmp_path / "runners"), sleep=lambda s: None, reconnect_wait_s=0)
    device.require()
    with pytest.raises(DeviceDisconnectedError, match="disconnected"):
        with device:
            run_sweep(plan([16, 24], device=device.name), device, out, QUICK,
                      prepare_case=FakeExporter(tmp_path / "artifacts"))
    records = read_records(out / "results.jsonl")
    assert len(records) == 1 and records[0].status == "ok" and records[0].case.device == f"adb:{emulated.serial}"
    assert records[0].device_info["model"] == "Pixel 8"
    assert records[0].conditions["taskset_mask"] == "1f0"


def test_parallel_exports_run_in_worker_processes_and_failures_come_back_as_records(tmp_path):
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    out = tmp_path / "bench"
    sweep = SweepPlan(models=["mobilenet_v3_small_075"], targets=["onnx"], resolutions=[96, 100], device="local")
    outcome = run_sweep(sweep, LocalDevice(), out, QUICK, export_jobs=2)
    records = {r.case.resolution: r for r in read_records(out / "results.jsonl")}
    assert records[96].status == "ok" and records[96].latency_ms["median"] > 0 and records[96].macs > 0
    assert records[100].status == "failed" and records[100].error.startswith("export failed: ")
    assert "100" in records[100].error  # the worker's one-line error, not a pickling failure
    assert [c.resolution for c in outcome.measured] == [96] and [c.resolution for c in outcome.failed] == [100]
    assert (out / "artifacts" / "r96" / "mobilenet_v3_small_075" / "onnx" / "manifest.json").is_file()
