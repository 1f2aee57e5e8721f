"""Core ML: int8 weights rewrite the saved package (any host); W8A8 needs macOS and iOS17."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
import torch.nn as nn

ct = pytest.importorskip("coremltools", reason="the coreml extra is not installed")

from mobexport.errors import QuantizationError  # noqa: E402
from mobexport.export.targets.coreml.target import describe_mlpackage  # noqa: E402
from mobexport.export.quantize.calibration import CalibrationSet  # noqa: E402
from mobexport.export.quantize.coreml_compress import check_host, compress  # noqa: E402
from mobexport.export.quantize.sizes import mlpackage_weight_bytes  # noqa: E402


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 64, 3, padding=1)
        self.conv2 = nn.Conv2d(64, 64, 3, padding=1)
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        return self.head(torch.relu(self.conv2(torch.relu(self.conv(x)))).mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    torch.manual_seed(0)
    program = torch.export.export(Small().eval(), (torch.randn(1, 3, 32, 32),), strict=False)
    model = ct.convert(program.run_decompositions({}), inputs=[ct.TensorType(name="input", shape=(1, 3, 32, 32))],
                       convert_to="mlprogram", compute_precision=ct.precision.FLOAT16,
                       minimum_deployment_target=ct.target.iOS16, skip_model_load=True)
    path = tmp_path_factory.mktemp("coreml") / "model.mlpackage"
    model.save(str(path))
    return path


def test_int8_weights_stores_int8_and_halves_the_fp16_weights(package, tmp_path):
    import shutil

    target = tmp_path / "model.mlpackage"
    shutil.copytree(package, target)
    before = mlpackage_weight_bytes(target)
    scheme = compress(target, "int8-weights")
    after = mlpackage_weight_bytes(target)
    assert "int8" in scheme["weights"] and before / after > 1.7
    histogram = describe_mlpackage(target)["op_histogram"]
    assert any(op.startswith("constexpr") for op in histogram), histogram
    assert not list(tmp_path.glob(".*"))  # the staged copy was renamed into place


@pytest.mark.skipif(sys.platform == "darwin", reason="on macOS W8A8 runs")
def test_w8a8_is_refused_off_macos():
    with pytest.raises(QuantizationError, match="needs macOS"):
        check_host("int8", 8)


def test_w8a8_needs_ios17(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    with pytest.raises(QuantizationError, match="iOS17"):
        check_host("int8", 7)
    check_host("int8", 8)
    check_host("int8-weights", 7)


@pytest.mark.skipif(sys.platform != "darwin", reason="Core ML predicts (and so calibrates activations) on macOS only")
def test_w8a8_on_macos(package, tmp_path):  # pragma: no cover - macOS only
    import shutil

    target = tmp_path / "model.mlpackage"
    shutil.copytree(package, target)
    x = np.random.default_rng(0).normal(size=(8, 3, 32, 32)).astype(np.float32)
    scheme = compress(target, "int8", CalibrationSet(inputs=x, source="synthetic", resolution=32))
    assert "int8" in scheme["activations"]
    histogram = describe_mlpackage(target)["op_histogram"]
    assert "quantize" in histogram and "dequantize" in histogram
