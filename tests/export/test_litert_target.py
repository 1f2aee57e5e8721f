"""LiteRT target: conversion, parity through the LiteRT interpreter, delegate coverage, bad input."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from mobexport.config import ExportConfig
from mobexport.errors import MissingDependencyError, ResolutionError, TargetOptionError
from mobexport.export.litert_target import LiteRTTarget, delegated_nodes
from mobexport.export.pipeline import export_model
from mobexport.export.target import get_target, target_names

HAS_LITERT = all(importlib.util.find_spec(m) is not None for m in ("litert_torch", "ai_edge_litert"))
needs_litert = pytest.mark.skipif(not HAS_LITERT, reason='the litert extra is not installed (pip install "mobexport[litert]")')

SMALL = "mobilenet_v3_small_075"


def _node(index, name, inputs, outputs):
    return {"index": index, "op_name": name, "inputs": np.array(inputs), "outputs": np.array(outputs)}


def test_delegated_nodes_are_those_between_a_delegate_nodes_inputs_and_outputs():
    # t0 -> CONV(0) -> t2 -> CONCAT(1) -> t3 -> ADD(2) -> t4 -> MEAN(3) -> t5
    # XNNPACK took CONV and ADD+MEAN in two partitions; CONCAT stayed on the reference kernels.
    nodes = [
        _node(0, "CONV_2D", [0, 1, -1], [2]),
        _node(1, "CONCATENATION", [2, 2], [3]),
        _node(2, "ADD", [3, 6], [4]),
        _node(3, "MEAN", [4, 7], [5]),
        _node(4, "DELEGATE", [0, 1], [2]),
        _node(5, "DELEGATE", [3, 6, 7], [5]),
    ]
    assert delegated_nodes(nodes) == {0, 2, 3}


def test_no_delegate_means_nothing_delegated():
    nodes = [_node(0, "CONV_2D", [0, 1], [2]), _node(1, "MEAN", [2], [3])]
    assert delegated_nodes(nodes) == set()


def test_litert_is_a_registered_target():
    assert "litert" in target_names()
    target = get_target("litert")
    assert target.file_name == "model.tflite" and not target.default_dynamic


def test_missing_extra_names_the_install_command(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(MissingDependencyError, match=r'pip install "mobexport\[litert\]"'):
        LiteRTTarget().require()


def test_dynamic_and_precision_options_are_refused_before_any_work(tmp_path):
    target = LiteRTTarget()
    with pytest.raises(TargetOptionError, match="static input size"):
        target.check_config(ExportConfig(model=SMALL, target="litert", dynamic=True, out_dir=tmp_path))
    with pytest.raises(TargetOptionError, match="--quantize fp16"):
        target.check_config(ExportConfig(model=SMALL, target="litert", out_dir=tmp_path,
                                         target_options={"precision": "fp16"}))


@pytest.fixture(scope="module")
def small_artifact(tmp_path_factory):
    if not HAS_LITERT:
        pytest.skip('the litert extra is not installed (pip install "mobexport[litert]")')
    config = ExportConfig(model=SMALL, target="litert", resolution=96, parity_samples=2,
                          out_dir=tmp_path_factory.mktemp("litert"))
    return export_model(config)


@needs_litert
def test_export_matches_pytorch_and_records_delegate_coverage(small_artifact):
    m = small_artifact.manifest
    d = m.target_details
    assert small_artifact.path.name == "model.tflite" and small_artifact.path.stat().st_size == m.artifact["size_bytes"]
    assert [p["resolution"] for p in m.parity] == [96] and m.parity[0]["passed"]
    assert m.parity[0]["max_abs_error"] < 1e-3
    assert m.resolution["dynamic"] is False and d["input_shape"] == [1, 3, 96, 96]
    assert d["delegate"] == "xnnpack" and d["delegate_subgraphs"] >= 1
    assert d["ops"] == d["delegated_ops"] + sum(d["reference_kernel_ops"].values())
    assert d["delegated_ops"] == sum(d["delegated_op_kinds"].values())
    # MobileNetV3's convolutions all run in XNNPACK.
    assert "CONV_2D" in d["delegated_op_kinds"] and "CONV_2D" not in d["reference_kernel_ops"]
    assert "DEPTHWISE_CONV_2D" in d["delegated_op_kinds"]


@needs_litert
def test_runner_takes_only_the_exported_size(small_artifact):
    target = get_target("litert")
    with target.load(small_artifact.path, small_artifact.manifest.__dict__) as runner:
        out = runner.infer(np.zeros((1, 3, 96, 96), np.float32))
        assert out.shape == (1, 1000) and np.isfinite(out).all()
        with pytest.raises(ResolutionError, match="96x96 only"):
            runner.infer(np.zeros((1, 3, 128, 128), np.float32))
