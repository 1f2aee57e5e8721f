"""int8 ExecuTorch programs: PT2E quantization with the XNNPACK quantizer.

The flow torch.ao/torchao and ExecuTorch document: the exported program's
graph -> ``prepare_pt2e`` with ``XNNPACKQuantizer`` (observers where the
quantizer's patterns match: conv, linear, add, mul, cat, pooling) -> run the
calibration inputs -> ``convert_pt2e`` (observers become quantize/dequantize
pairs, weights are stored int8) -> ``torch.export`` again -> the ExecuTorch
target lowers it, and XNNPACK's partitioner turns each ``dq -> op -> q``
group into one integer kernel.

* ``int8``: static, ``get_symmetric_quantization_config(is_per_channel=True)``:
  int8 per-channel symmetric weights, int8 activations with ranges from the
  calibration inputs (histogram observer). Ops the quantizer has no int8
  pattern for (layer norm, softmax, the attention matmuls between two
  activations) stay float by construction.
* ``int8-weights``: the dynamic config (``is_dynamic=True``): int8 per-channel
  weights, activations quantized per inference from their actual range, so no
  calibration is needed. XNNPACK has no float-compute path for int8 conv
  weights, which is why this is the weights-mostly mode ExecuTorch offers.

Mixed precision (static mode): per-layer sensitivity (:mod:`.pt2e_sensitivity`)
on the converted graph; layers below the threshold are filtered out of the
quantizer's annotation (``set_filter_function``; ``set_module_name(name,
None)`` is not supported by this quantizer) together with, for a layer whose
output int8 represents badly, the consumers of that output (through
data-movement ops), which would otherwise quantize it again; then the model is
prepared, calibrated and converted once more.
"""

from __future__ import annotations

import copy
import logging
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from mobexport.errors import QuantizationError, first_line

from ..trace import TracedProgram, example_input
from . import sensitivity as sens
from .calibration import CalibrationSet
from .mixed_precision import mixed_precision as run_mixed_precision

log = logging.getLogger(__name__)


@dataclass
class Pt2eResult:
    traced: TracedProgram
    float_layers: list[sens.LayerSensitivity] = field(default_factory=list)
    float_island: list[str] = field(default_factory=list)
    sensitivity: dict = field(default_factory=dict)
    scheme: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# aten ops that move data without arithmetic: a float tensor stays float through them.
DATA_MOVEMENT = {"view", "reshape", "_unsafe_view", "permute", "transpose", "flatten", "squeeze", "unsqueeze",
                 "relu", "relu_", "hardtanh", "hardtanh_", "max_pool2d", "cat", "slice", "select", "expand",
                 "contiguous", "clone", "dropout"}


def float_island(graph, chosen: list[sens.LayerSensitivity]) -> list[str]:
    """The chosen layers, plus the consumers of the outputs int8 represents badly (through data-movement ops).

    A layer chosen for its weights only needs itself excluded: its input stays
    quantized by its producer, and XNNPACK runs it in float on the dequantized
    values.
    """
    from .pt2e_sensitivity import compute_consumers

    nodes = {n.name: n for n in graph.nodes}
    island: list[str] = []

    def downstream(node) -> None:
        for consumer in compute_consumers(node):
            if consumer.name in island:
                continue
            island.append(consumer.name)
            op = getattr(consumer.target, "__name__", str(consumer.target)).split(".")[0]
            if op in DATA_MOVEMENT:
                downstream(consumer)

    for layer in chosen:
        if layer.name in nodes and layer.name not in island:
            island.append(layer.name)
            if layer.cause == "output":
                downstream(nodes[layer.name])
    return island


def make_quantizer(mode: str, excluded: set[str] | frozenset = frozenset()):
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=(mode == "int8-weights"))
    quantizer = XNNPACKQuantizer().set_global(config)
    if excluded:
        quantizer.set_filter_function(lambda node: node.name not in excluded)
    return quantizer


def _prepare_and_calibrate(graph_module, mode: str, calibration: CalibrationSet, excluded: set[str]):
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    prepared = prepare_pt2e(graph_module, make_quantizer(mode, excluded))
    with torch.no_grad():
        # Dynamic mode needs one pass for the weight observers only.
        for x in calibration.batches(None if mode == "int8" else 1):
            prepared(torch.from_numpy(np.ascontiguousarray(x)))
    return prepared


def _convert(prepared):
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    return convert_pt2e(prepared)


def output_sqnr(reference, quantized, inputs: np.ndarray) -> float:
    """Logits SQNR of a converted graph module against its float reference, in PyTorch."""
    with torch.no_grad():
        ref = [reference(torch.from_numpy(x[None])) for x in inputs]
        got = [quantized(torch.from_numpy(x[None])) for x in inputs]
    return sens.sqnr_db(torch.cat(ref).numpy(), torch.cat(got).numpy())


class _Pt2eBackend:
    """PT2E for XNNPACK as a :mod:`.mixed_precision` backend.

    The float reference is the first prepared (observed, not converted) module:
    its observers pass values through, and its node names are the converted graph's.
    """

    def __init__(self, traced: TracedProgram, mode: str, calibration: CalibrationSet):
        self.traced, self.mode, self.calibration = traced, mode, calibration
        self.reference = None

    def quantize(self, excluded: list[str]):
        prepared = _prepare_and_calibrate(self.traced.program.module(), self.mode, self.calibration, set(excluded))
        if self.reference is None:
            self.reference = copy.deepcopy(prepared)
        return _convert(prepared)

    def measure_layers(self, quantized, samples: np.ndarray) -> list[sens.LayerSensitivity]:
        from .pt2e_sensitivity import measure_layers

        return measure_layers(self.reference, quantized, samples)

    def float_island(self, quantized, chosen: list[sens.LayerSensitivity]) -> list[str]:
        return float_island(quantized.graph, chosen)

    def output_sqnr(self, quantized, samples: np.ndarray) -> float:
        return output_sqnr(self.reference, quantized, samples)


def quantize_program(traced: TracedProgram, mode: str, calibration: CalibrationSet,
                     threshold_db: float = sens.DEFAULT_THRESHOLD_DB, mixed_precision: bool = True,
                     max_float_fraction: float = sens.MAX_FLOAT_FRACTION) -> Pt2eResult:
    """The quantized program (static at ``traced.resolution``) and what was kept in float."""
    if mode not in ("int8", "int8-weights"):
        raise QuantizationError(f"PT2E/XNNPACK does not do --quantize {mode}", "use int8 or int8-weights")
    notes = []
    if traced.dynamic:
        notes.append(f"quantized program is static {traced.resolution}: XNNPACK's int8 kernels are planned per shape")
    scheme = {
        "flow": "PT2E (torchao prepare_pt2e / convert_pt2e), XNNPACKQuantizer",
        "weights": "int8, symmetric, per output channel",
        "activations": ("int8, per tensor, HistogramObserver on the calibration inputs" if mode == "int8"
                        else "int8, per tensor, range taken per inference (dynamic)"),
        "float_by_design": "ops without an XNNPACK int8 pattern (layer norm, softmax, activation x activation matmul)",
    }
    chosen: list[sens.LayerSensitivity] = []
    island: list[str] = []
    summary: dict = {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if mode == "int8" and mixed_precision:
                result = run_mixed_precision(_Pt2eBackend(traced, mode, calibration), calibration.inputs,
                                             threshold_db, max_float_fraction)
                converted, chosen, island, summary = result.quantized, result.chosen, result.island, result.summary
            else:
                converted = _convert(_prepare_and_calibrate(traced.program.module(), mode, calibration, set()))
            program = torch.export.export(converted, (example_input(traced.size),), strict=False)
    except QuantizationError:
        raise
    except Exception as exc:
        raise QuantizationError(f"PT2E quantization for XNNPACK failed: {first_line(exc)}",
                                "run with --debug for the full trace") from exc
    quantized = TracedProgram(program, traced.resolution, False, traced.resolution, traced.resolution, traced.stride,
                              width=traced.width)
    return Pt2eResult(quantized, chosen, island, summary, scheme, notes)
