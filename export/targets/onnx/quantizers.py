"""ONNX quantizers: ONNX Runtime's tools rewrite the ``.onnx`` file the target wrote (artifact stage)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..quantizers import ARTIFACT, QuantizeJob, Quantized, Quantizer, by_mode


def quantize_onnx_file(job: QuantizeJob) -> Quantized:
    """Rewrite the lowered ONNX file in place (through a staged copy) and describe it again."""
    from mobexport.export.quantize import sizes
    from mobexport.export.quantize.mixed_precision import layer_facts

    from .target import describe_onnx

    float_path = Path(job.lowered.path)
    staged = float_path.with_name(f".{float_path.stem}.{job.mode}.onnx")
    fp32_bytes = sizes.onnx_weight_bytes(float_path)
    facts: dict = {}
    if job.mode == "fp16":
        from mobexport.export.quantize.onnx_fp16 import convert_fp16

        facts["scheme"] = convert_fp16(float_path, staged)
    elif job.mode == "int8-weights":
        from mobexport.export.quantize.onnx_weights import quantize_weights

        result = quantize_weights(float_path, staged)
        facts["scheme"] = {**result.scheme, "quantized_weights": len(result.quantized)}
    else:
        from mobexport.export.quantize.onnx_static import quantize_int8

        result = quantize_int8(float_path, staged, job.calibration or job.synthetic_calibration(),
                               unsigned_activations=job.options.int8_activations == "uint8")
        facts["scheme"] = result.scheme
        facts.update(layer_facts(result.float_layers, result.sensitivity, result.float_island))
    staged.replace(float_path)
    facts["weights"] = sizes.comparison(fp32_bytes, sizes.onnx_weight_bytes(float_path),
                                        "initializers of the fp32 vs the quantized ONNX file")
    return Quantized(lowered=dataclasses.replace(job.lowered, details=describe_onnx(float_path)), facts=facts)


QUANTIZERS = by_mode(
    Quantizer("fp16", ARTIFACT, "fp16 weights and compute, fp32 inputs/outputs (onnxruntime float16 converter)",
              run=quantize_onnx_file),
    Quantizer("int8", ARTIFACT, "static int8 QDQ, per-channel symmetric weights, calibrated activations "
                                "(onnxruntime quantize_static)", calibrated=True, run=quantize_onnx_file),
    Quantizer("int8-weights", ARTIFACT, "int8 per-channel weights + DequantizeLinear, fp32 activations and compute",
              run=quantize_onnx_file),
)
