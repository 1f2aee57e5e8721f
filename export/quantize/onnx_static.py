"""Static int8 QDQ quantization of an ONNX file with ONNX Runtime, with float fallback.

``onnxruntime.quantization.quantize_static`` in QDQ format: every quantized
tensor ``t`` becomes ``DequantizeLinear(QuantizeLinear(t))``, weights are
stored int8 with one symmetric scale per output channel, activation ranges are
the min/max seen on the calibration inputs. ONNX Runtime fuses each
``DQ -> op -> Q`` group into an integer kernel (QLinearConv, QGemm, ...);
other runtimes (TensorRT, NNAPI, QNN) read the same QDQ file, which is why it
is the format of choice over ORT's own QOperator ops.

Which ops: the ones that carry the MACs and have int8 kernels, ``Conv``,
``Gemm`` and ``MatMul`` with a constant weight (``QUANTIZED_OPS``). The rest
stays float between a DequantizeLinear and a QuantizeLinear: elementwise ops,
normalisation, softmax, and the attention products of two activations
(``activation_products``), which is also what ExecuTorch's XNNPACK quantizer
quantizes. ORT's default, every op it knows, costs hybrids their accuracy:
on the trained Mobile-Former-26M fixture (64 held-back calibration images at
96 px) it gives logits SQNR 12.6 dB, cosine 0.971 and 96.9% top-1 agreement
(its Dynamic ReLU products, token-path adds and pixel softmaxes each rounded
to 256 levels), against 22.3 dB, 0.997 and 100% with the compute ops alone;
ONNX Runtime still fuses the same convolutions into QLinearConv (11 of 31
there; MobileNetV3-L: 48 of 63, against 45 with every op quantized).

The layer that reads the image (``input_layers``, the stem conv) stays
float, a standing rule of post-training quantization: its rounding error
passes through every later layer, while its MACs are a few percent of the
model. Measured on the trained fixtures (1000 held-out images): Mobile-Former-
26M 95.9 -> 95.0% top-1, 97.9% agreement, 21.2 dB with an int8 stem, and
95.6%, 98.7%, 23.4 dB with a float one; MobileNetV3-S 98.6%, 99.5%, 25.1 dB
against 98.7%, 99.8%, 26.0 dB.

Activations are int8 and asymmetric by default (ORT's S8S8 default); for
TensorRT they are symmetric (zero point 0), as its explicit quantization needs.
``unsigned_activations`` gives uint8 activations (U8S8): the same 256 levels
with a zero point, and the form ONNX Runtime's x86 kernels run fast without
VNNI (measured on an AVX2 host: MobileNetV3-L S8S8 17 ms, U8S8 8-9 ms, fp32
9-10 ms; docs/quantization.md).

Mixed precision: the fully quantized model's per-layer sensitivity is measured
(:mod:`.onnx_sensitivity`, rule in :mod:`.sensitivity`); layers adding too
much noise go to ``nodes_to_exclude`` and the model is quantized once more.

Excluding a node alone does not make it float in QDQ form: a tensor carries a
Q/DQ pair as long as *any* quantized neighbour asks for one, and ONNX Runtime
re-quantizes the float weight of a Conv/Gemm whose input comes from a
DequantizeLinear (its ``WeightBiasQuantization`` transformer, per-tensor int8,
worse than what we had). So each chosen layer is excluded with its float
island (:func:`float_island`): for a layer whose *output* int8 represents
badly, the consumers of that output (through data-movement ops); for a layer
whose *weights* do, the producers and other consumers of its input, so that
it reads a float tensor and keeps fp32 weights. The other island weights are
stored int8 per channel behind a DequantizeLinear (:mod:`.onnx_weights`):
float compute, and the file stays about 4x smaller, unless that costs more
than ``ISLAND_WEIGHTS_MAX_LOSS_DB`` of logits SQNR (and leaves it below
``ISLAND_WEIGHTS_GOOD_DB``).
"""

from __future__ import annotations

import functools
import logging
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mobexport.errors import QuantizationError, first_line

from . import sensitivity as sens
from .calibration import CalibrationSet
from .mixed_precision import mixed_precision as run_mixed_precision
from .onnx_weights import quantize_weights

log = logging.getLogger(__name__)


# Ops that move data without arithmetic: a float tensor stays float through them.
DATA_MOVEMENT = {"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Slice", "Split", "Gather", "Identity",
                 "Relu", "Clip", "MaxPool", "Pad", "Resize", "Expand", "Concat"}
ISLAND_WEIGHTS_MAX_LOSS_DB = 1.0
ISLAND_WEIGHTS_GOOD_DB = 30.0  # logits this close to float are fine whatever the float island would give
# The ops static int8 quantizes (see the module doc); others stay float.
QUANTIZED_OPS = ("Conv", "Gemm", "MatMul")
# Ops whose float weight ONNX Runtime re-quantizes (per tensor) when their input is dequantized.
WEIGHTED = {"Conv", "ConvTranspose", "Gemm"}


@dataclass
class OnnxInt8Result:
    path: Path
    float_layers: list[sens.LayerSensitivity] = field(default_factory=list)
    sensitivity: dict = field(default_factory=dict)
    scheme: dict = field(default_factory=dict)
    float_island: list[str] = field(default_factory=list)


def float_island(model, chosen: list[sens.LayerSensitivity]) -> tuple[list[str], set[str]]:
    """Node names to exclude so that each chosen layer really computes in float (see module doc).

    Returns (island, nodes whose weights must stay fp32).
    """
    nodes = {n.name: n for n in model.graph.node}
    initializers = {i.name for i in model.graph.initializer}
    producer = {out: n for n in model.graph.node for out in n.output}
    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for name in n.input:
            consumers.setdefault(name, []).append(n)
    island: list[str] = []
    keep_fp32: set[str] = set()

    def add(node) -> None:
        if node.name not in island:
            island.append(node.name)

    def downstream(tensor: str) -> None:
        for c in consumers.get(tensor, []):
            if c.name in island:
                continue
            add(c)
            if c.op_type in DATA_MOVEMENT:
                for out in c.output:
                    downstream(out)

    def upstream(tensor: str) -> None:
        node = producer.get(tensor)
        while node is not None:
            add(node)
            for c in consumers.get(node.output[0], []):
                add(c)
            if node.op_type not in DATA_MOVEMENT or not node.input:
                break
            node = producer.get(node.input[0])

    for layer in chosen:
        node = nodes.get(layer.name)
        if node is None:
            continue
        add(node)
        if layer.cause == "weights":
            keep_fp32.add(node.name)
            # A float Conv/Gemm fed by a DequantizeLinear gets its weight re-quantized per tensor by ORT.
            if node.op_type in WEIGHTED and node.input and node.input[0] not in initializers:
                upstream(node.input[0])
                for c in consumers.get(node.input[0], []):
                    add(c)
        else:
            for out in node.output:
                downstream(out)
    return island, keep_fp32


class ArrayReader:
    """Feeds calibration inputs to ONNX Runtime's calibrator, one ``[1, 3, R, R]`` at a time."""

    def __init__(self, input_name: str, inputs: np.ndarray):
        self.input_name = input_name
        self.inputs = inputs
        self.index = 0

    def get_next(self) -> dict | None:
        if self.index >= len(self.inputs):
            return None
        x = self.inputs[self.index][None]
        self.index += 1
        return {self.input_name: np.ascontiguousarray(x, dtype=np.float32)}

    def rewind(self) -> None:
        self.index = 0

    def __iter__(self):
        return self

    def __next__(self):
        item = self.get_next()
        if item is None:
            raise StopIteration
        return item


def activation_products(model) -> list[str]:
    """MatMul/Gemm nodes whose second operand is computed, not a weight: attention's ``QK^T`` and ``AV``."""
    constants = {i.name for i in model.graph.initializer}
    constants |= {out for n in model.graph.node if n.op_type == "Constant" for out in n.output}
    return [n.name for n in model.graph.node
            if n.op_type in ("MatMul", "Gemm") and len(n.input) > 1 and n.input[1] not in constants]


def input_layers(model) -> list[str]:
    """The quantizable layers that read the network input directly (the stem conv)."""
    name = graph_input_name(model)
    return [n.name for n in model.graph.node if n.op_type in QUANTIZED_OPS and name in n.input]


def input_name_of(path: Path) -> str:
    import onnx

    return graph_input_name(onnx.load(str(path), load_external_data=False))


def graph_input_name(model) -> str:
    initializers = {i.name for i in model.graph.initializer}
    return next(i.name for i in model.graph.input if i.name not in initializers)


def quantize_qdq(float_path: Path, out_path: Path, calibration: CalibrationSet, exclude: list[str] | None = None,
                 symmetric_activations: bool = False, unsigned_activations: bool = False) -> Path:
    """One ``quantize_static`` run over ``QUANTIZED_OPS``: QDQ, per-channel int8 weights, MinMax int8 activations."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    reader = ArrayReader(input_name_of(float_path), calibration.inputs)
    quiet = logging.getLogger("onnxruntime")
    level, root_level = quiet.level, logging.getLogger().level
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logging.getLogger().setLevel(max(root_level, logging.ERROR))
            quantize_static(
                str(float_path), str(out_path), reader,
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8 if unsigned_activations else QuantType.QInt8,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=list(QUANTIZED_OPS),
                nodes_to_exclude=list(exclude or []),
                calibrate_method=CalibrationMethod.MinMax,
                extra_options={"ActivationSymmetric": symmetric_activations, "WeightSymmetric": True},
            )
    except Exception as exc:
        raise QuantizationError(f"ONNX Runtime int8 quantization failed: {first_line(exc)}",
                                "run with --debug for the full trace, or try --quantize int8-weights") from exc
    finally:
        quiet.setLevel(level)
        logging.getLogger().setLevel(root_level)
    return Path(out_path)


def quantize_int8(float_path: Path, out_path: Path, calibration: CalibrationSet, symmetric_activations: bool = False,
                  threshold_db: float = sens.DEFAULT_THRESHOLD_DB, mixed_precision: bool = True,
                  max_float_fraction: float = sens.MAX_FLOAT_FRACTION,
                  unsigned_activations: bool = False) -> OnnxInt8Result:
    """Quantize ``float_path`` to ``out_path``; layers below ``threshold_db`` stay float."""
    if unsigned_activations and symmetric_activations:
        raise ValueError("symmetric activations are int8: unsigned_activations does not apply")
    import onnx

    quantize = functools.partial(quantize_qdq, symmetric_activations=symmetric_activations,
                                 unsigned_activations=unsigned_activations)
    out_path = Path(out_path)
    graph = onnx.load(str(float_path), load_external_data=False)
    stem = input_layers(graph)
    always_float = stem + activation_products(graph)
    scheme = {
        "format": "QDQ",
        "ops": f"{', '.join(QUANTIZED_OPS)} with constant weights; the rest float",
        "weights": "int8, symmetric, per output channel",
        "activations": (f"{'uint8' if unsigned_activations else 'int8'}, "
                        f"{'symmetric' if symmetric_activations else 'asymmetric'}, per tensor, MinMax"),
        "tool": "onnxruntime.quantization.quantize_static",
        "float_input_layers": stem,
    }
    if not mixed_precision:
        quantize(float_path, out_path, calibration, exclude=always_float)
        return OnnxInt8Result(out_path, scheme=scheme, float_island=list(stem))
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".quantize-") as tmp:
        backend = _QdqBackend(float_path, graph, Path(tmp), calibration, always_float, quantize)
        result = run_mixed_precision(backend, calibration.inputs, threshold_db, max_float_fraction)
        summary = result.summary
        if result.chosen:
            samples = calibration.inputs[: sens.SENSITIVITY_SAMPLES]
            packed = quantize_weights(result.quantized, Path(tmp) / "island_int8_weights.onnx",
                                      only_nodes=set(result.island) - backend.keep_fp32).path
            packed_db = output_sqnr(float_path, packed, samples)
            mixed_db = result.mixed_sqnr_db
            summary["output_sqnr_db"]["mixed_int8_island_weights"] = round(packed_db, 2)
            summary["island_weights"] = "fp32"
            if packed_db >= min(mixed_db - ISLAND_WEIGHTS_MAX_LOSS_DB, ISLAND_WEIGHTS_GOOD_DB):
                Path(packed).replace(out_path)
                summary["island_weights"] = "int8 (weights only)"
            else:
                Path(result.quantized).replace(out_path)
        else:
            Path(result.quantized).replace(out_path)
    island = result.island
    return OnnxInt8Result(out_path, result.chosen, summary, scheme, stem + [n for n in island if n not in stem])


class _QdqBackend:
    """ONNX Runtime's QDQ quantization as a :mod:`.mixed_precision` backend; each result is a file in ``work``."""

    def __init__(self, float_path: Path, graph, work: Path, calibration: CalibrationSet, always_float: list[str],
                 quantize):
        self.float_path, self.graph, self.work = float_path, graph, work
        self.calibration, self.always_float, self._quantize = calibration, always_float, quantize
        self.keep_fp32: set[str] = set()
        self.runs = 0

    def quantize(self, excluded: list[str]) -> Path:
        self.runs += 1
        out = self.work / ("all_int8.onnx" if not excluded else f"mixed_{self.runs}.onnx")
        return self._quantize(self.float_path, out, self.calibration, exclude=self.always_float + list(excluded))

    def measure_layers(self, quantized: Path, samples: np.ndarray) -> list[sens.LayerSensitivity]:
        from .onnx_sensitivity import measure_layers

        return measure_layers(self.float_path, quantized, samples, self.work)

    def float_island(self, quantized: Path, chosen: list[sens.LayerSensitivity]) -> list[str]:
        island, self.keep_fp32 = float_island(self.graph, chosen)
        return island

    def output_sqnr(self, quantized: Path, samples: np.ndarray) -> float:
        return output_sqnr(self.float_path, quantized, samples)


def output_sqnr(float_path: Path, quantized_path: Path, inputs: np.ndarray) -> float:
    """Logits SQNR of the quantized file against the float one, with ONNX Runtime's real kernels."""
    import onnxruntime as ort

    def run(path):
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return np.concatenate([session.run(None, {name: x[None]})[0] for x in inputs])

    return sens.sqnr_db(run(float_path), run(quantized_path))
