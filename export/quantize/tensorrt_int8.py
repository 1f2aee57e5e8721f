"""int8 for TensorRT: the engine is built from a symmetric QDQ ONNX (explicit quantization).

TensorRT reads Q/DQ nodes as the network's quantization (its "explicit"
mode), which replaces its older implicit calibrator API. Its Q/DQ must be
symmetric (zero point 0) int8, so the ONNX is quantized by
:mod:`.onnx_static` with symmetric activations; layers the sensitivity check
keeps in float run in fp16 (the FP16 builder flag stays on unless
``--precision fp32``). The TensorRT target's int8 quantizer runs this on the
ONNX its ``lower`` wrote, before its ``finish`` builds the engine.
"""

from __future__ import annotations

from pathlib import Path

from . import sizes
from .calibration import CalibrationSet
from .mixed_precision import layer_facts
from .onnx_static import quantize_int8


def quantize_symmetric_qdq(onnx_path: Path, calibration: CalibrationSet) -> dict:
    """Rewrite ``onnx_path`` in place as a symmetric QDQ model; facts for the manifest."""
    onnx_path = Path(onnx_path)
    fp32_bytes = sizes.onnx_weight_bytes(onnx_path)
    staged = onnx_path.with_name(f".{onnx_path.stem}.int8.onnx")
    result = quantize_int8(onnx_path, staged, calibration, symmetric_activations=True)
    staged.replace(onnx_path)
    return {
        "scheme": result.scheme,
        **layer_facts(result.float_layers, result.sensitivity, result.float_island),
        "weights": sizes.comparison(fp32_bytes, sizes.onnx_weight_bytes(onnx_path),
                                    "initializers of the fp32 vs the QDQ ONNX the engine is built from"),
    }
