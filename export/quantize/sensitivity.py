"""Per-layer quantization sensitivity, and which layers to keep in float.

For every quantized layer we compare its output in the quantized model with
the same tensor in the float model, on a few calibration inputs:

    SQNR_out = 10 log10( sum(y_float^2) / sum((y_float - y_quant)^2) )   [dB]

That output error is the layer's inputs' error carried forward plus the error
the layer adds itself (its weights and input rounding). Treating the two as
independent noises of a gain-preserving layer, noise powers add, so the share
the layer adds is

    1 / SQNR_own = 1 / SQNR_out - 1 / SQNR_in          (linear power ratios)

where ``SQNR_in`` is the worst SQNR among the layer's activation inputs. A layer
whose ``SQNR_own`` is below the threshold is kept in float: excluding it removes
exactly the noise it adds, whereas a threshold on ``SQNR_out`` alone would blame
every layer downstream of the first bad one. When the output is no noisier than
the input (``SQNR_out >= SQNR_in``) the layer adds nothing measurable.

The backends (:mod:`.onnx_sensitivity`, :mod:`.pt2e_sensitivity`) collect the
SQNRs; this module holds the arithmetic and the selection rule.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

# A layer adding noise at or below -25 dB of its output signal is kept in float.
# int8 per-channel conv/linear layers typically add noise at 30-45 dB; 25 dB
# (error amplitude ~6% of the signal) marks a layer int8 represents badly.
DEFAULT_THRESHOLD_DB = 25.0
# Never keep more than this share of the quantized layers in float: past it the
# model is not really int8 any more, and the manifest should show the failure.
MAX_FLOAT_FRACTION = 0.25
SENSITIVITY_SAMPLES = 8
INFINITE_DB = 200.0


@dataclass
class LayerSensitivity:
    """One quantized layer: its name (as its backend knows it), op, scope and SQNRs in dB."""

    name: str
    op: str
    scope: str
    sqnr_in_db: float
    sqnr_out_db: float
    sqnr_own_db: float

    def to_dict(self) -> dict:
        return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def sqnr_db(reference: np.ndarray, candidate: np.ndarray) -> float:
    """``10 log10(signal / noise)`` of ``candidate`` against ``reference``; capped at ``INFINITE_DB``."""
    ref = np.asarray(reference, dtype=np.float64).ravel()
    noise = float(np.sum((ref - np.asarray(candidate, dtype=np.float64).ravel()) ** 2))
    signal = float(np.sum(ref ** 2))
    if noise == 0.0 or not math.isfinite(noise):
        return INFINITE_DB if noise == 0.0 else -INFINITE_DB
    if signal == 0.0:
        return -INFINITE_DB
    return float(min(INFINITE_DB, 10.0 * math.log10(signal / noise)))


def own_sqnr_db(sqnr_in_db: float, sqnr_out_db: float) -> float:
    """The SQNR of the noise a layer adds itself, given its input and output SQNR."""
    if sqnr_in_db >= INFINITE_DB:
        return sqnr_out_db
    added = 10.0 ** (-sqnr_out_db / 10.0) - 10.0 ** (-sqnr_in_db / 10.0)
    if added <= 0.0:
        return INFINITE_DB
    return float(min(INFINITE_DB, -10.0 * math.log10(added)))


def layer(name: str, op: str, scope: str, sqnr_in_db: float, sqnr_out_db: float) -> LayerSensitivity:
    return LayerSensitivity(name, op, scope, float(sqnr_in_db), float(sqnr_out_db),
                            own_sqnr_db(sqnr_in_db, sqnr_out_db))


def select_float_layers(layers: list[LayerSensitivity], threshold_db: float = DEFAULT_THRESHOLD_DB,
                        max_fraction: float = MAX_FLOAT_FRACTION) -> list[LayerSensitivity]:
    """Layers adding noise below ``threshold_db``, worst first, at most ``max_fraction`` of all layers."""
    bad = sorted((s for s in layers if s.sqnr_own_db < threshold_db), key=lambda s: s.sqnr_own_db)
    limit = max(1, int(max_fraction * len(layers))) if layers else 0
    return bad[:limit]


def summary(layers: list[LayerSensitivity], chosen: list[LayerSensitivity], threshold_db: float,
            samples: int) -> dict:
    """What goes into the manifest: the rule, the counts and the most sensitive layers."""
    worst = sorted(layers, key=lambda s: s.sqnr_own_db)[:10]
    return {
        "metric": "SQNR (dB) of each quantized layer's output vs float; own = the noise the layer adds itself",
        "threshold_db": threshold_db,
        "samples": samples,
        "layers_measured": len(layers),
        "float_layers": len(chosen),
        "most_sensitive": [s.to_dict() for s in worst],
    }
