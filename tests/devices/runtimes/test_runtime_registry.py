"""The runtime registry: a case opens the runtime of its artifact's kind, whatever target made it."""

from __future__ import annotations

import pytest

from mobexport.devices import runtimes
from mobexport.devices.case_worker import artifact_kind, build_runner
from mobexport.devices.device import EAGER, WHERE_IT_RUNS, CaseJob

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")


def test_a_tensorrt_onnx_without_engine_opens_onnx_runtime(tmp_path):
    """--build-engine no writes model.onnx: the case worker once imported `tensorrt` for it and failed without it."""
    from mobexport.devices.runtimes.onnxruntime import OnnxRuntimeRunner

    manifest = {"target": "tensorrt", "artifact": {"file": "model.onnx", "kind": runtimes.ONNX}}
    job = CaseJob(kind="tensorrt", model="m", resolution=32, artifact_path=tmp_path / "model.onnx", manifest=manifest)
    assert artifact_kind(job) == runtimes.ONNX
    assert runtimes.runtime(artifact_kind(job)).package == "onnxruntime"
    runner, _ = build_runner(job, "cpu")
    assert isinstance(runner, OnnxRuntimeRunner)


def test_a_manifest_without_a_kind_is_read_by_the_file_suffix(tmp_path):
    job = CaseJob(kind="tensorrt", model="m", resolution=32, artifact_path=tmp_path / "model.engine",
                  manifest={"artifact": {"file": "model.engine"}})
    assert artifact_kind(job) == runtimes.TENSORRT
    assert artifact_kind(CaseJob(kind=EAGER, model="m", resolution=32)) == EAGER


def test_every_kind_says_where_it_runs():
    assert set(WHERE_IT_RUNS) == set(runtimes.RUNTIMES)
    assert all(runtimes.where_it_runs(kind) for kind in runtimes.RUNTIMES)
