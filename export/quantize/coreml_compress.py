"""Core ML quantization with ``coremltools.optimize.coreml``, applied to the saved package.

* ``fp16``: the converter's ``compute_precision=FLOAT16`` (the Core ML target's
  default precision): weights stored fp16 and fp16 compute.
* ``int8-weights``: ``linear_quantize_weights`` with symmetric int8, one scale
  per output channel: weights stored int8 (``constexpr_affine_dequantize`` /
  ``constexpr_blockwise_shift_scale`` ops), dequantized once when the model
  loads; activations and compute stay fp16. Needs no calibration and runs on
  any host, since it rewrites the MIL program without predicting.
* ``int8`` (W8A8): ``linear_quantize_activations`` then
  ``linear_quantize_weights``. Calibrating activations *runs* the model on the
  calibration inputs, which Core ML can only do on macOS, and the activation
  quantize/dequantize ops need the iOS17 / macOS14 opset.
"""

from __future__ import annotations

import logging
import shutil
import sys
import warnings
from pathlib import Path

from mobexport.errors import QuantizationError, first_line

from .calibration import CalibrationSet

W8A8_MIN_SPEC = 8  # iOS17 / macOS14
WEIGHT_THRESHOLD = 2048  # elements: smaller weights (biases, tiny convs) stay fp16, as coremltools' default


def check_host(mode: str, deployment_spec: int | None) -> None:
    """Refuse, before any work, what Core ML cannot do here or at this deployment target."""
    if mode != "int8":
        return
    if sys.platform != "darwin":
        raise QuantizationError("Core ML --quantize int8 (W8A8) calibrates by running the model, which needs macOS",
                                "use --quantize int8-weights here, or run the export on a Mac")
    if deployment_spec is not None and deployment_spec < W8A8_MIN_SPEC:
        raise QuantizationError("Core ML int8 activations need deployment target iOS17 / macOS14 or later",
                                "pass --deployment-target iOS17")


def _weight_config():
    import coremltools.optimize as cto

    return cto.coreml.OptimizationConfig(global_config=cto.coreml.OpLinearQuantizerConfig(
        mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=WEIGHT_THRESHOLD))


def compress(path: Path, mode: str, calibration: CalibrationSet | None = None, input_name: str = "input") -> dict:
    """Rewrite the ``.mlpackage`` at ``path`` in place for ``mode``; returns the scheme for the manifest."""
    import coremltools as ct
    import coremltools.optimize as cto

    logger = logging.getLogger("coremltools")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if mode == "int8-weights":
                model = ct.models.MLModel(str(path), skip_model_load=True)
                compressed = cto.coreml.linear_quantize_weights(model, _weight_config())
                scheme = {"weights": "int8, symmetric, per output channel (linear_quantize_weights)",
                          "activations": "fp16", "weight_threshold_elements": WEIGHT_THRESHOLD}
            elif mode == "int8":
                if calibration is None:
                    raise QuantizationError("Core ML int8 needs calibration inputs", "pass --calib DIR")
                model = ct.models.MLModel(str(path))
                activation_config = cto.coreml.OptimizationConfig(
                    global_config=cto.coreml.OpLinearQuantizerConfig(mode="linear_symmetric"))
                samples = [{input_name: x} for x in calibration.batches()]
                activations = cto.coreml.experimental.linear_quantize_activations(model, activation_config, samples)
                compressed = cto.coreml.linear_quantize_weights(activations, _weight_config())
                scheme = {"weights": "int8, symmetric, per output channel",
                          "activations": "int8, symmetric, per tensor, calibrated (linear_quantize_activations)"}
            else:
                raise QuantizationError(f"Core ML compression has no mode '{mode}'", "use int8 or int8-weights")
            staged = Path(path).with_name(f".compressed-{Path(path).name}")
            compressed.save(str(staged))
    except QuantizationError:
        raise
    except Exception as exc:
        raise QuantizationError(f"Core ML {mode} compression failed: {first_line(exc)}",
                                "run with --debug for the full trace") from exc
    finally:
        logger.setLevel(level)
    shutil.rmtree(path)
    staged.rename(path)
    return {"tool": "coremltools.optimize.coreml", **scheme}
