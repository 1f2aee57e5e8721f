"""Quantization for every target: fp16, static int8 with calibration, int8 weights.

Which target does which mode, at which stage and how, is declared by each
target (``export/targets/<id>/quantizers.py``); this package holds the tools.
One concept per module: ``support`` (the targets' tables, read without torch),
``calibration`` (the ``--calib`` images), ``onnx_static`` / ``onnx_weights`` /
``onnx_fp16`` (ONNX Runtime tooling), ``pt2e_xnnpack`` (ExecuTorch),
``coreml_compress`` (coremltools.optimize), ``tensorrt_int8`` (QDQ ONNX for
the engine), ``sensitivity`` with ``onnx_sensitivity`` / ``pt2e_sensitivity``
(per-layer SQNR and the float fallback), ``mixed_precision`` (the loop:
quantize, measure, choose the float island, requantize), ``sizes`` (weight bytes),
``report`` (accuracy of float vs quantized) and ``session`` (what the
pipeline calls, in order). See docs/quantization.md.
"""

from .support import MODES, check_supported, supported_modes

__all__ = ["MODES", "check_supported", "supported_modes"]
