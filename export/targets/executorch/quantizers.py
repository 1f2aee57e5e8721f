"""ExecuTorch quantizers: PT2E with the XNNPACK quantizer, on the torch program before lowering."""

from __future__ import annotations

from ..quantizers import PROGRAM, QuantizeJob, Quantized, Quantizer, by_mode


def quantize_pt2e(job: QuantizeJob) -> Quantized:
    from mobexport.export.quantize import sizes
    from mobexport.export.quantize.mixed_precision import layer_facts
    from mobexport.export.quantize.pt2e_xnnpack import quantize_program

    traced = job.float_program
    result = quantize_program(traced, job.mode, job.calibration or job.synthetic_calibration())
    facts = layer_facts(result.float_layers, result.sensitivity if job.mode == "int8" else None, result.float_island)
    facts["scheme"] = result.scheme
    facts["weights"] = sizes.comparison(sizes.program_weight_bytes(traced.program),
                                        sizes.program_weight_bytes(result.traced.program),
                                        "constants of the float vs the quantized exported program")
    return Quantized(traced=result.traced, facts=facts, notes=list(result.notes))


QUANTIZERS = by_mode(
    Quantizer("int8", PROGRAM, "static int8 PT2E with the XNNPACK quantizer (per-channel weights), lowered to XNNPACK",
              calibrated=True, run=quantize_pt2e),
    Quantizer("int8-weights", PROGRAM, "int8 per-channel weights, activations quantized per inference "
                                       "(XNNPACK dynamic quantization of linear/conv)", run=quantize_pt2e),
)
