"""Core ML quantizers: fp16 is the converter's compute precision; int8 modes rewrite the saved package."""

from __future__ import annotations

from pathlib import Path

from ..quantizers import ARTIFACT, QuantizeJob, Quantized, Quantizer, by_mode


def compress_package(job: QuantizeJob) -> Quantized:
    """``coremltools.optimize.coreml`` on the saved ``.mlpackage`` (fp16: record what the converter did)."""
    from mobexport.export.quantize import sizes

    fp32_bytes = sizes.program_weight_bytes(job.float_program.program)
    if job.mode == "fp16":
        scheme = {"weights": "fp16", "activations": "fp16", "tool": "coremltools compute_precision"}
    else:
        from mobexport.export.quantize.coreml_compress import compress

        scheme = compress(Path(job.lowered.path), job.mode, job.calibration)
    return Quantized(lowered=job.lowered, facts={
        "scheme": scheme,
        "weights": sizes.comparison(fp32_bytes, sizes.mlpackage_weight_bytes(job.lowered.path),
                                    "float program constants vs the package's weight files"),
    })


QUANTIZERS = by_mode(
    Quantizer("fp16", ARTIFACT, "fp16 weights and compute (Core ML compute precision FLOAT16)",
              run=compress_package, implies={"precision": "fp16"}),
    Quantizer("int8", ARTIFACT, "W8A8: coremltools.optimize linear_quantize_activations (calibrated by running the "
                                "saved package on the calibration images, so macOS only) then linear_quantize_weights "
                                "per-channel int8 (iOS17+/macOS14+)", calibrated=True, run=compress_package),
    Quantizer("int8-weights", ARTIFACT, "int8 per-channel weights (coremltools.optimize linear_quantize_weights), "
                                        "fp16 compute", run=compress_package),
)
