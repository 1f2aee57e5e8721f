"""LiteRT quantizers: Google's ai-edge-quantizer rewrites the converted ``.tflite`` file (artifact stage)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..quantizers import ARTIFACT, QuantizeJob, Quantized, Quantizer, by_mode


def quantize_tflite(job: QuantizeJob) -> Quantized:
    from mobexport.export.quantize import sizes
    from mobexport.export.quantize.litert_quantize import quantize_litert

    from .target import delegate_coverage

    float_path = Path(job.lowered.path)
    staged = float_path.with_name(f".{float_path.stem}.{job.mode}.tflite")
    fp32_bytes = float_path.stat().st_size
    calibration = (job.calibration or job.synthetic_calibration()) if job.mode == "int8" else None
    scheme = quantize_litert(float_path, staged, job.mode, calibration)
    staged.replace(float_path)
    facts = {"scheme": scheme,
             "weights": sizes.comparison(fp32_bytes, float_path.stat().st_size, "the fp32 vs the quantized .tflite file")}
    details = {**job.lowered.details, **delegate_coverage(float_path)}
    return Quantized(lowered=dataclasses.replace(job.lowered, details=details), facts=facts)


QUANTIZERS = by_mode(
    Quantizer("fp16", ARTIFACT, "fp16 weights of conv and linear layers, dequantized in the graph; fp32 compute "
                                "(ai-edge-quantizer float casting)", run=quantize_tflite),
    Quantizer("int8", ARTIFACT, "static int8: per-channel symmetric weights, calibrated per-tensor activations "
                                "(ai-edge-quantizer static_wi8_ai8)", calibrated=True, run=quantize_tflite),
)
