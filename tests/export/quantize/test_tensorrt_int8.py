"""TensorRT int8: a symmetric QDQ ONNX (zero points 0) and an engine command that reads it as int8."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")

import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402

from mobexport.export.quantize.calibration import calibration_for  # noqa: E402
from mobexport.export.quantize.tensorrt_int8 import quantize_symmetric_qdq  # noqa: E402
from mobexport.export.targets.quantizers import OPTIONS  # noqa: E402
from mobexport.export.targets.tensorrt.quantizers import QUANTIZERS  # noqa: E402
from mobexport.models import get_spec  # noqa: E402
from mobexport.export.targets.tensorrt.target import trtexec_command  # noqa: E402

HERE = Path(__file__).parent


def tiny_model(tmp_path):
    spec = importlib.util.spec_from_file_location("onnx_quantize_tests", HERE / "test_onnx_quantize.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.tiny_cnn(tmp_path / "model.onnx")


def calib_dir(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    directory = tmp_path / "calib"
    directory.mkdir()
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(directory / f"{i}.png")
    return directory


def test_int8_onnx_for_tensorrt_is_symmetric_qdq(tmp_path):
    path = tiny_model(tmp_path)
    calibration_for.cache_clear()
    calibration = calibration_for(calib_dir(tmp_path), get_spec("mobilenet_v3_small_100"), 16, 8)
    facts = quantize_symmetric_qdq(path, calibration)
    assert "symmetric" in facts["scheme"]["activations"] and "float_layers" in facts
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    zero_points = [inits[n.input[2]] for n in model.graph.node
                   if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2 and n.input[2] in inits]
    assert zero_points and all(np.all(z == 0) for z in zero_points)
    assert all(z.dtype in (np.int8, np.int32) for z in zero_points)
    assert facts["weights"]["ratio"] > 2.5  # the stem (a large share of this tiny model) keeps fp32 weights


def test_fp16_is_a_builder_flag_not_a_rewrite():
    fp16 = QUANTIZERS["fp16"]
    assert fp16.stage == OPTIONS and fp16.run is None and fp16.implies == {"precision": "fp16"}
    assert QUANTIZERS["int8"].calibrated


def test_trtexec_builds_int8_with_fp16_fallback():
    command = trtexec_command("model.onnx", "model.engine", "int8",
                              {"input": "input", "dynamic": False, "shape": [1, 3, 96, 96]})
    assert "--int8" in command.split() and "--fp16" in command.split()
