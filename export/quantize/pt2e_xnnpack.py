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
None)`` is not supported by this quantizer) and the model is prepared,
calibrated and converted once more.
"""

from __future__ import annotations

import copy
import logging
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from mobexport.errors import QuantizationError

from ..trace import TracedProgram, example_input
from . import sensitivity as sens
from .calibration import CalibrationSet

log = logging.getLogger(__name__)


@dataclass
class Pt2eResult:
    traced: TracedProgram
    float_layers: list[sens.LayerSensitivity] = field(default_factory=list)
    sensitivity: dict = field(default_factory=dict)
    scheme: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


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


def quantize_program(traced: TracedProgram, mode: str, calibration: CalibrationSet,
                     threshold_db: float = sens.DEFAULT_THRESHOLD_DB, mixed_precision: bool = True) -> Pt2eResult:
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
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            excluded: set[str] = set()
            prepared = _prepare_and_calibrate(traced.program.module(), mode, calibration, excluded)
            chosen: list[sens.LayerSensitivity] = []
            summary: dict = {}
            if mode == "int8" and mixed_precision:
                from .pt2e_sensitivity import measure_layers

                reference = copy.deepcopy(prepared)
                converted = _convert(prepared)
                samples = calibration.inputs[: sens.SENSITIVITY_SAMPLES]
                layers = measure_layers(reference, converted, samples)
                chosen = sens.select_float_layers(layers, threshold_db)
                summary = sens.summary(layers, chosen, threshold_db, len(samples))
                if chosen:
                    log.info("int8: keeping %d layer(s) in float: %s", len(chosen), ", ".join(s.name for s in chosen))
                    excluded = {s.name for s in chosen}
                    converted = _convert(_prepare_and_calibrate(traced.program.module(), mode, calibration, excluded))
            else:
                converted = _convert(prepared)
            program = torch.export.export(converted, (example_input(traced.resolution),), strict=False)
    except QuantizationError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise QuantizationError(f"PT2E quantization for XNNPACK failed: {first}",
                                "run with --debug for the full trace") from exc
    quantized = TracedProgram(program, traced.resolution, False, traced.resolution, traced.resolution, traced.stride)
    return Pt2eResult(quantized, chosen, summary, scheme, notes)
