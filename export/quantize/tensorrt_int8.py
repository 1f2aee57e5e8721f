"""int8 for TensorRT: the engine is built from a symmetric QDQ ONNX (explicit quantization).

TensorRT reads Q/DQ nodes as the network's quantization (its "explicit"
mode), which replaces its older implicit calibrator API. Its Q/DQ must be
symmetric (zero point 0) int8, so the ONNX is quantized by
:mod:`.onnx_static` with symmetric activations; layers the sensitivity check
keeps in float run in fp16 (the FP16 builder flag stays on unless
``--precision fp32``). Called from the TensorRT target's ``lower`` between
writing the ONNX and building the engine.
"""

from __future__ import annotations

from pathlib import Path

from mobexport.config import ExportConfig

from . import sizes, support
from .calibration import calibration_for
from .onnx_static import quantize_int8


def quantize_for_tensorrt(onnx_path: Path, config: ExportConfig, resolution: int) -> dict | None:
    """Rewrite ``onnx_path`` as a symmetric QDQ model when ``--quantize int8``; facts for the manifest."""
    if config.quantize != "int8":
        return None
    onnx_path = Path(onnx_path)
    calibration = calibration_for(config.calib_dir, config.spec(), resolution, config.calib_samples)
    fp32_bytes = sizes.onnx_weight_bytes(onnx_path)
    staged = onnx_path.with_name(f".{onnx_path.stem}.int8.onnx")
    result = quantize_int8(onnx_path, staged, calibration, symmetric_activations=True)
    staged.replace(onnx_path)
    return {
        "mode": "int8",
        "how": support.describe("tensorrt", "int8"),
        "calibration": calibration.to_dict(),
        "scheme": result.scheme,
        "float_layers": [layer.to_dict() for layer in result.float_layers],
        "sensitivity": result.sensitivity,
        "float_nodes": result.float_island,
        "weights": sizes.comparison(fp32_bytes, sizes.onnx_weight_bytes(onnx_path),
                                    "initializers of the fp32 vs the QDQ ONNX the engine is built from"),
    }
