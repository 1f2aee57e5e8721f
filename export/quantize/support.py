"""Which ``--quantize`` modes each target supports, and how: the one table.

``check_supported`` turns an unsupported (target, mode) pair into a one-line
:class:`QuantizationError` that names what the target does support, before
any work is done. Everything else asks this table rather than repeating it.
"""

from __future__ import annotations

from mobexport.errors import QuantizationError

MODES = ("none", "fp16", "int8", "int8-weights")

# target -> mode -> how it is done (shown in docs and the manifest).
SUPPORT: dict[str, dict[str, str]] = {
    "onnx": {
        "fp16": "fp16 weights and compute, fp32 inputs/outputs (onnxruntime float16 converter)",
        "int8": "static int8 QDQ, per-channel symmetric weights, calibrated activations (onnxruntime quantize_static)",
        "int8-weights": "int8 per-channel weights + DequantizeLinear, fp32 activations and compute",
    },
    "executorch": {
        "int8": "static int8 PT2E with the XNNPACK quantizer (per-channel weights), lowered to XNNPACK",
        "int8-weights": "int8 per-channel weights, activations quantized per inference "
                        "(XNNPACK dynamic quantization of linear/conv)",
    },
    "coreml": {
        "fp16": "fp16 weights and compute (Core ML compute precision FLOAT16)",
        "int8": "W8A8: PT2E with coremltools' CoreMLQuantizer, calibrated in PyTorch (iOS17+/macOS14+)",
        "int8-weights": "int8 per-channel weights (coremltools.optimize linear_quantize_weights), fp16 compute",
    },
    "litert": {
        "fp16": "fp16 weights of conv and linear layers, dequantized in the graph; fp32 compute "
                "(ai-edge-quantizer float casting)",
        "int8": "static int8: per-channel symmetric weights, calibrated per-tensor activations "
                "(ai-edge-quantizer static_wi8_ai8)",
    },
    "tensorrt": {
        "fp16": "fp16 engine (builder flag FP16)",
        "int8": "int8 engine from a symmetric QDQ ONNX (explicit quantization), fp16 for float-kept layers",
    },
}

# The parity tolerance a mode implies (keys of parity.TOLERANCES).
PRECISION = {"fp16": "fp16", "int8": "int8", "int8-weights": "int8"}


def supported_modes(target: str) -> list[str]:
    """Modes ``target`` accepts, ``none`` first."""
    return ["none", *SUPPORT.get(target, {})]


def check_supported(target: str, mode: str) -> None:
    """Raise :class:`QuantizationError` unless ``target`` can do ``mode``."""
    if mode not in MODES:
        raise QuantizationError(f"unknown quantization '{mode}'", f"use --quantize {' | '.join(MODES)}")
    if mode != "none" and mode not in SUPPORT.get(target, {}):
        raise QuantizationError(f"--quantize {mode} is not supported for --target {target}",
                                f"{target} supports: {', '.join(supported_modes(target))}")


def precision_of(mode: str) -> str | None:
    """The parity tolerance name a quantized artifact is held to, ``None`` for ``none``."""
    return PRECISION.get(mode)


def describe(target: str, mode: str) -> str:
    return "no quantization" if mode == "none" else SUPPORT[target][mode]
