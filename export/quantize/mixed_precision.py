"""The mixed-precision loop, written once: quantize, measure each layer, choose the float island, requantize.

Static int8 rounds every quantized tensor; some layers cannot take it
(:mod:`.sensitivity` holds the measure and the rule). A backend (ONNX
Runtime's QDQ tooling, PT2E for XNNPACK) supplies four operations on its own
graph form; this module orders them and writes the summary the manifest keeps:

1. ``quantize(excluded)``: everything quantizable in int8 except ``excluded``;
2. ``measure_layers(quantized, samples)``: each layer's sensitivity;
3. ``float_island(quantized, chosen)``: the chosen layers plus the neighbours
   that must stay float with them (what that means is the backend's business);
4. ``quantize(island)`` once more, and ``output_sqnr`` of both results.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from . import sensitivity as sens

log = logging.getLogger(__name__)


class MixedPrecisionBackend(Protocol):
    def quantize(self, excluded: list[str]) -> Any: ...

    def measure_layers(self, quantized: Any, samples: np.ndarray) -> list[sens.LayerSensitivity]: ...

    def float_island(self, quantized: Any, chosen: list[sens.LayerSensitivity]) -> list[str]: ...

    def output_sqnr(self, quantized: Any, samples: np.ndarray) -> float: ...


@dataclass
class MixedPrecision:
    quantized: Any                       # the result to ship: all-int8, or int8 with the float island
    all_int8: Any                        # the first, fully quantized result
    chosen: list[sens.LayerSensitivity] = field(default_factory=list)
    island: list[str] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    mixed_sqnr_db: float | None = None   # logits SQNR of the mixed result (unrounded), when layers were kept float


def mixed_precision(backend: MixedPrecisionBackend, inputs: np.ndarray,
                    threshold_db: float = sens.DEFAULT_THRESHOLD_DB,
                    max_float_fraction: float = sens.MAX_FLOAT_FRACTION) -> MixedPrecision:
    """Quantize, keep the layers int8 represents badly in float (with their island), and say what was done."""
    first = backend.quantize([])
    samples = inputs[: sens.SENSITIVITY_SAMPLES]
    layers = backend.measure_layers(first, samples)
    chosen = sens.select_float_layers(layers, threshold_db, max_float_fraction)
    summary = sens.summary(layers, chosen, threshold_db, len(samples))
    if not chosen:
        return MixedPrecision(first, first, [], [], summary)
    island = backend.float_island(first, chosen)
    log.info("int8: keeping %d layer(s) in float (%d nodes with their float island): %s", len(chosen),
             len(island), ", ".join(s.name for s in chosen))
    mixed = backend.quantize(island)
    mixed_db = backend.output_sqnr(mixed, samples)
    summary["output_sqnr_db"] = {"all_int8": round(backend.output_sqnr(first, samples), 2),
                                 "mixed": round(mixed_db, 2)}
    return MixedPrecision(mixed, first, chosen, island, summary, mixed_db)


def layer_facts(float_layers, sensitivity: dict | None, island: list[str] | None = None) -> dict:
    """The manifest's record of what stayed float and why."""
    facts: dict = {"float_layers": [layer.to_dict() for layer in float_layers]}
    if island:
        # Everything left float so that the layers above compute on float tensors (see onnx_static).
        facts["float_nodes"] = island
    if sensitivity is not None:
        facts["sensitivity"] = sensitivity
    return facts
