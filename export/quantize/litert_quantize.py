"""LiteRT quantization of a converted ``.tflite`` file, with Google's ``ai-edge-quantizer``.

Both modes run on the artifact (after conversion), as TFLite's own post-training
quantization does:

* ``fp16``: the weights of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED
  stored as float16 and dequantized in the graph (``w16 = fp16(w)``;
  ``y = op(x, fp32(w16))``), float32 compute: half those weights' bytes, at
  most 2^-11 relative error per weight. (The quantizer's float casting does
  not cover BATCH_MATMUL; token matmuls with constant operands stay fp32.)
* ``int8``: static W8A8: per-output-channel symmetric int8 weights
  (``s_c = max|w_c| / 127``), per-tensor int8 activations whose ranges are the
  min/max over the calibration images, for every op the quantizer supports.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np

from mobexport.errors import QuantizationError, first_line

from .calibration import CalibrationSet

FP16_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def quantize_litert(float_path: Path, out_path: Path, mode: str, calibration: CalibrationSet | None) -> dict:
    """Write the quantized model to ``out_path``; return the scheme for the manifest."""
    from ai_edge_quantizer import qtyping, quantizer, recipe_manager
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    manager = recipe_manager.RecipeManager()
    if mode == "fp16":
        for op in FP16_OPS:
            manager.add_weight_only_config(regex=".*", operation_name=getattr(qtyping.TFLOperationName, op),
                                           num_bits=16, algorithm_key=AlgorithmName.FLOAT_CASTING)
        scheme = {"weights": "fp16 (dequantized in the graph)", "activations": "fp32",
                  "ops": list(FP16_OPS), "tool": "ai-edge-quantizer float casting"}
    elif mode == "int8":
        if calibration is None:
            raise QuantizationError("LiteRT int8 needs calibration images", "pass --calib DIR")
        manager.add_static_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                                  activation_num_bits=8, weight_num_bits=8)
        # The model keeps float32 input and output: the first and last ops quantize and dequantize.
        for edge in (qtyping.TFLOperationName.INPUT, qtyping.TFLOperationName.OUTPUT):
            manager.add_quantization_config(regex=".*", operation_name=edge, algorithm_key=AlgorithmName.NO_QUANTIZE)
        scheme = {"weights": "int8 per-channel symmetric", "activations": "int8 per-tensor, calibrated min/max",
                  "tool": "ai-edge-quantizer static_wi8_ai8", "calibration_images": len(calibration.inputs)}
    else:
        raise QuantizationError(f"--quantize {mode} is not supported for --target litert", "use fp16 or int8")

    qt = quantizer.Quantizer(str(float_path), manager.get_quantization_recipe())
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            result = None
            if qt.need_calibration:
                signature, input_name = _signature(float_path)
                data = {signature: [{input_name: x.astype(np.float32)} for x in calibration.batches()]}
                result = qt.calibrate(data, num_threads=1)
            quantized = qt.quantize(result, enable_progress_bar=False, enable_progress_report=False)
    except Exception as exc:
        raise QuantizationError(f"LiteRT {mode} quantization failed: {first_line(exc, 200)}",
                                "run with --debug for the full trace") from exc
    Path(out_path).write_bytes(bytes(quantized.quantized_model))
    return scheme


def _signature(path: Path) -> tuple[str, str]:
    """The model's signature key and its one input's name (litert-torch writes ``serving_default``)."""
    from ai_edge_litert.interpreter import Interpreter

    signatures = Interpreter(model_path=str(path)).get_signature_list()
    key = next(iter(signatures))
    return key, signatures[key]["inputs"][0]
