"""LiteRT target: conversion, parity through the LiteRT interpreter, delegate coverage, bad input."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from mobexport.config import ExportConfig
from mobexport.errors import MissingDependencyError, ResolutionError, TargetOptionError
from mobexport.export.targets.litert.target import LiteRTTarget, delegated_nodes, failing_op
from mobexport.export.pipeline import export_model
from mobexport.export.targets import get_target, target_names

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


# ------------------------------------------------------------------ quantization

RES = 96


@pytest.fixture(scope="module")
def reduced_fixture(tmp_path_factory):
    from mobexport.benchmarks.fixtures import training as ft

    recipe = ft.TrainRecipe(epochs=2, train_samples=320, heldout_samples=100, batch_size=32, batches_per_epoch=10,
                            lr=4e-3, warmup_fraction=0.2)
    return ft.obtain_fixture("mobilenet_v3_small_100", RES, seed=0, recipe=recipe,
                             out_dir=tmp_path_factory.mktemp("fixtures"), threads=2)


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory):
    from mobexport.models.datasets.synthetic_shapes import write_png_tree

    directory = tmp_path_factory.mktemp("calib") / "images"
    write_png_tree(directory, 40, 110, seed=0, split="calib")
    return directory


@needs_litert
def test_fp16_halves_the_weights_and_keeps_parity(tmp_path):
    config = ExportConfig(model=SMALL, target="litert", resolution=RES, parity_samples=2, out_dir=tmp_path,
                          quantize="fp16")
    m = export_model(config).manifest
    q = m.quantization
    assert q["mode"] == "fp16" and q["scheme"]["weights"].startswith("fp16")
    assert 1.6 < q["weights"]["ratio"] < 2.1  # conv/linear weights halved; biases and the rest stay fp32
    assert m.tolerance["name"] == "fp16" and all(p["passed"] for p in m.parity)
    assert m.target_details["delegated_ops"] > 0


@needs_litert
def test_int8_from_the_cli_keeps_a_trained_models_answers(capsys, tmp_path, reduced_fixture, calib_dir):
    import json

    from mobexport.cli import main
    from mobexport.export.quantize.calibration import calibration_for

    calibration_for.cache_clear()
    out = tmp_path / "out"
    status = main(["--model", "mobilenet_v3_small_100", "--target", "litert", "--resolution", str(RES),
                   "--checkpoint", str(reduced_fixture.path), "--num-classes", "10", "--quantize", "int8",
                   "--calib", str(calib_dir), "--calib-samples", "24", "--parity-samples", "2", "--out", str(out)])
    printed = capsys.readouterr()
    assert status == 0, printed.err
    manifest = json.loads(next(out.rglob("manifest.json")).read_text())
    q = manifest["quantization"]
    assert q["mode"] == "int8" and q["scheme"]["weights"] == "int8 per-channel symmetric"
    assert q["calibration"]["source"] == "images" and q["scheme"]["calibration_images"] == 24
    assert q["weights"]["ratio"] > 2.5
    accuracy = q["accuracy"]
    assert accuracy["samples"] == 100 and accuracy["top1_agreement"] >= 0.85
    assert manifest["tolerance"]["name"] == "int8" and all(p["passed"] for p in manifest["parity"])


@pytest.mark.slow
@pytest.mark.parametrize("model, mode", [("mobile_former_26m", "int8"), ("mobilenet_v3_small_100", "int8"),
                                         ("mobile_former_26m", "fp16")])
def test_acceptance_on_the_trained_fixture(tmp_path_factory, model, mode):
    if not HAS_LITERT:
        pytest.skip('the litert extra is not installed (pip install "mobexport[litert]")')
    from mobexport.benchmarks.fixtures import training as ft
    from mobexport.models.datasets.synthetic_shapes import write_png_tree
    from mobexport.export.quantize.calibration import calibration_for

    calib = tmp_path_factory.mktemp("calib") / "images"
    write_png_tree(calib, 256, 110, seed=0, split="calib")
    checkpoint = ft.ensure_fixture(model, RES, reporter=ft.RichReporter())
    calibration_for.cache_clear()
    config = ExportConfig(model=model, target="litert", resolution=RES, checkpoint=checkpoint, num_classes=10,
                          out_dir=tmp_path_factory.mktemp("out"), quantize=mode, calib_dir=calib, calib_samples=128)
    accuracy = export_model(config).manifest.quantization["accuracy"]
    drop = abs(accuracy["float_top1"] - accuracy["quantized_top1"]) * 100
    assert accuracy["samples"] == 1000
    if mode == "fp16":
        assert drop <= 0.2, accuracy
    else:
        assert drop <= 1.0 and accuracy["top1_agreement"] >= 0.98, accuracy


def test_failing_op_is_read_from_the_converters_message():
    message = ("Only 1D FFT on the last dimension is currently supported.\n\nWhile executing %_fft_r2c : "
               "[num_users=1] = call_function[target=torch.ops.aten._fft_r2c.default](args = (%x, [2, 3], 0, True))")
    assert failing_op(message) == "aten._fft_r2c.default"
    assert failing_op("something else went wrong") is None


@needs_litert
def test_an_op_the_converter_rejects_is_one_line_naming_it(tmp_path):
    import torch

    from mobexport.errors import ExportError
    from mobexport.export.targets.litert.target import convert
    from mobexport.export.trace import TracedProgram

    class Spectrum(torch.nn.Module):  # a 2-D FFT: litert-torch lowers only 1-D FFTs on the last dimension
        def forward(self, x):
            return torch.fft.rfft2(x).abs().mean(dim=(2, 3))

    program = torch.export.export(Spectrum().eval(), (torch.randn(1, 3, 32, 32),))
    traced = TracedProgram(program, 32, False, 32, 32, 32)
    with pytest.raises(ExportError) as raised:
        convert(traced, tmp_path / "model.tflite")
    line = raised.value.one_line()
    assert "\n" not in line and "at aten._fft_r2c.default" in line and "1D FFT" in line
    assert not (tmp_path / "model.tflite").exists()
