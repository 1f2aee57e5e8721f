"""Per-layer quantization sensitivity, and which layers to keep in float.

A layer is sensitive when int8 cannot represent what it computes. That is
measured in isolation, on the float model's own values (so an early bad layer
does not hide or blame the ones after it), for the two things static int8
rounds:

* its output tensor, quantized per tensor with the scale and zero point
  calibration chose: ``SQNR_out = 10 log10(sum(y^2) / sum((y - QDQ(y))^2))``
  on each calibration input, then the *median* over inputs. The median matters:
  a tensor whose range is set by a few rare inputs (a stripe pattern that makes
  one block's activations 25x larger than usual) has a fine power-summed SQNR,
  dominated by those inputs, while every ordinary input is crushed to a few
  int8 levels;
* its weights, quantized per output channel: ``SQNR_weight`` of the int8
  weights against the float ones.

``SQNR = min(SQNR_out, SQNR_weight)`` is the layer's sensitivity; a layer
below the threshold is kept in float. What "kept in float" means for a
backend's graph (the neighbours that would otherwise re-quantize the tensor)
is the backend's business (:func:`.onnx_static.float_island`,
:func:`.pt2e_xnnpack.float_island`). The backends collect the numbers
(:mod:`.onnx_sensitivity`, :mod:`.pt2e_sensitivity`); this module holds the
arithmetic and the selection rule.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

# int8 per-tensor rounding of a well-spread tensor gives 30-40 dB; below 25 dB
# (error amplitude ~6% of the signal) the tensor is represented badly.
DEFAULT_THRESHOLD_DB = 25.0
# Never keep more than this share of the quantized layers in float: past it the
# model is not really int8 any more, and the manifest should show the failure.
MAX_FLOAT_FRACTION = 0.25
SENSITIVITY_SAMPLES = 16
INFINITE_DB = 200.0


@dataclass
class LayerSensitivity:
    """One quantized layer: its name (as its backend knows it), op, scope and SQNRs in dB."""

    name: str
    op: str
    scope: str
    sqnr_out_db: float      # its output tensor's int8 rounding (median over inputs)
    sqnr_weight_db: float   # its weights' int8 rounding (INFINITE_DB when it has none)

    @property
    def sqnr_db(self) -> float:
        return min(self.sqnr_out_db, self.sqnr_weight_db)

    @property
    def cause(self) -> str:
        return "weights" if self.sqnr_weight_db < self.sqnr_out_db else "output"

    def to_dict(self) -> dict:
        d = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in asdict(self).items()}
        d["sqnr_db"] = round(self.sqnr_db, 2)
        return d


def sqnr_db(reference: np.ndarray, candidate: np.ndarray) -> float:
    """``10 log10(signal / noise)`` of ``candidate`` against ``reference``; capped at ``INFINITE_DB``."""
    ref = np.asarray(reference, dtype=np.float64).ravel()
    noise = float(np.sum((ref - np.asarray(candidate, dtype=np.float64).ravel()) ** 2))
    signal = float(np.sum(ref ** 2))
    if noise == 0.0:
        return INFINITE_DB
    if not math.isfinite(noise) or signal == 0.0:
        return -INFINITE_DB
    return float(min(INFINITE_DB, 10.0 * math.log10(signal / noise)))


def fake_quantize(x: np.ndarray, scale, zero_point, qmin: int, qmax: int, axis: int | None = None) -> np.ndarray:
    """``DQ(Q(x))``: round ``x`` to the int grid of ``scale``/``zero_point`` (per tensor or along ``axis``)."""
    x = np.asarray(x, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    zero_point = np.asarray(zero_point, dtype=np.float64)
    if axis is not None and scale.ndim == 1 and scale.size > 1:
        shape = [1] * x.ndim
        shape[axis] = -1
        scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
    q = np.clip(np.round(x / scale) + zero_point, qmin, qmax)
    return (q - zero_point) * scale


def median_db(values: list[float]) -> float:
    return float(np.median(values)) if values else INFINITE_DB


def select_float_layers(layers: list[LayerSensitivity], threshold_db: float = DEFAULT_THRESHOLD_DB,
                        max_fraction: float = MAX_FLOAT_FRACTION) -> list[LayerSensitivity]:
    """Layers below ``threshold_db``, worst first, at most ``max_fraction`` of all layers."""
    bad = sorted((s for s in layers if s.sqnr_db < threshold_db), key=lambda s: s.sqnr_db)
    limit = max(1, int(max_fraction * len(layers))) if layers else 0
    return bad[:limit]


def summary(layers: list[LayerSensitivity], chosen: list[LayerSensitivity], threshold_db: float,
            samples: int) -> dict:
    """What goes into the manifest: the rule, the counts and the most sensitive layers."""
    worst = sorted(layers, key=lambda s: s.sqnr_db)[:10]
    return {
        "metric": "per layer, in isolation on float values: int8 rounding SQNR (dB) of its output tensor "
                  "(median over inputs) and of its weights; the lower one counts",
        "threshold_db": threshold_db,
        "samples": samples,
        "layers_measured": len(layers),
        "float_layers": len(chosen),
        "most_sensitive": [s.to_dict() for s in worst],
    }
