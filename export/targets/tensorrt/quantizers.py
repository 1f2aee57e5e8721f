"""TensorRT quantizers: fp16 is a builder flag; int8 rewrites the ONNX before ``finish`` builds the engine."""

from __future__ import annotations

import dataclasses

from ..quantizers import ARTIFACT, OPTIONS, QuantizeJob, Quantized, Quantizer, by_mode


def quantize_engine_onnx(job: QuantizeJob) -> Quantized:
    from mobexport.export.quantize.tensorrt_int8 import quantize_symmetric_qdq

    from ..onnx.target import describe_onnx

    facts = quantize_symmetric_qdq(job.lowered.path, job.calibration)
    onnx_facts = describe_onnx(job.lowered.path)
    details = {**job.lowered.details, "onnx_opset": onnx_facts["opset"], "onnx_nodes": onnx_facts["nodes"],
               "op_histogram": onnx_facts["op_histogram"]}
    return Quantized(lowered=dataclasses.replace(job.lowered, details=details), facts=facts)


QUANTIZERS = by_mode(
    Quantizer("fp16", OPTIONS, "fp16 engine (builder flag FP16)", implies={"precision": "fp16"}),
    Quantizer("int8", ARTIFACT, "int8 engine from a symmetric QDQ ONNX (explicit quantization), fp16 for "
                                "float-kept layers", calibrated=True, run=quantize_engine_onnx),
)
