"""Per-layer int8 sensitivity of a QDQ ONNX model, measured on its float original.

Only the float model runs: it is augmented with ONNX Runtime's own debugging
helper (``qdq_loss_debug.modify_model_output_intermediate_tensors``) so that
every float tensor is a graph output. Each tensor the QDQ model quantizes is
rounded here with the scale and zero point of its ``QuantizeLinear`` and
compared with itself, input by input; weights are compared with their
dequantized int8 copies (``qdq_loss_debug.create_weight_matching``). See
:mod:`.sensitivity` for why, and for the rule built on the numbers.
"""

from __future__ import annotations

import ast
import logging
import warnings
from pathlib import Path

import numpy as np

from . import sensitivity as sens

SAVED_SUFFIX = "_ReshapedSavedOutput"
RENAMED_OUTPUT = "_QuantizeLinear_Input"
# Activations ONNX Runtime fuses into the op before them (its output is quantized after them).
FUSED_ACTIVATIONS = ("Relu", "Clip")
INT_RANGES = {np.dtype(np.int8): (-128, 127), np.dtype(np.uint8): (0, 255),
              np.dtype(np.int16): (-32768, 32767), np.dtype(np.uint16): (0, 65535)}


def _float_name(name: str) -> str:
    """The float model's name of a QDQ-model tensor (ORT renames a graph output's producer)."""
    return name[: -len(RENAMED_OUTPUT)] if name.endswith(RENAMED_OUTPUT) else name


def _augment(path: Path, out: Path) -> Path:
    from onnxruntime.quantization.qdq_loss_debug import modify_model_output_intermediate_tensors

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        modify_model_output_intermediate_tensors(str(path), str(out))
    return out


def _session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _run(session, input_name: str, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every saved tensor by its name (graph outputs under their own name too)."""
    names = [o.name for o in session.get_outputs()]
    values = session.run(None, {input_name: np.ascontiguousarray(x[None], dtype=np.float32)})
    saved = {n: v for n, v in zip(names, values) if not n.endswith(SAVED_SUFFIX)}
    saved.update({n[: -len(SAVED_SUFFIX)]: v for n, v in zip(names, values) if n.endswith(SAVED_SUFFIX)})
    return saved


def node_scope(node) -> str:
    """The PyTorch module path a node came from (torch.onnx's name-scope metadata), if recorded."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = [s for s in ast.literal_eval(prop.value) if s]
            except (ValueError, SyntaxError):
                return ""
            return scopes[-2] if len(scopes) >= 2 else (scopes[0] if scopes else "")
    return ""


def activation_quantization(qdq_model) -> dict[str, tuple]:
    """Float tensor name -> (scale, zero point, qmin, qmax) of every quantized activation."""
    from onnx import numpy_helper

    inits = {i.name: numpy_helper.to_array(i) for i in qdq_model.graph.initializer}
    found = {}
    for node in qdq_model.graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in inits:
            continue
        scale = inits.get(node.input[1])
        zero = inits.get(node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros((), np.uint8)
        if scale is None or zero is None or scale.size != 1:
            continue
        qmin, qmax = INT_RANGES.get(zero.dtype, (-128, 127))
        found.setdefault(_float_name(node.input[0]), (float(scale), float(zero), qmin, qmax))
    return found


def quantized_layers(qdq_model) -> list:
    """The layers static int8 quantized: nodes of its op types fed by a DequantizeLinear.

    Float ops reading a dequantized tensor (a Mul after a quantized Conv) are not layers of their own.
    """
    from .onnx_static import QUANTIZED_OPS

    producer = {out: node for node in qdq_model.graph.node for out in node.output}
    return [node for node in qdq_model.graph.node if node.op_type in QUANTIZED_OPS
            and any((p := producer.get(name)) is not None and p.op_type == "DequantizeLinear" for name in node.input)]


def _output_tensor(node, consumers: dict, quantized: dict) -> str | None:
    """The tensor whose quantization rounds ``node``'s result: its output, or that of a fused Relu/Clip."""
    out = _float_name(node.output[0])
    if out in quantized:
        return out
    users = consumers.get(node.output[0], [])
    if len(users) == 1 and users[0].op_type in FUSED_ACTIVATIONS and users[0].output[0] in quantized:
        return users[0].output[0]
    return None


def measure_layers(float_path: Path, qdq_path: Path, inputs: np.ndarray, work_dir: Path) -> list[sens.LayerSensitivity]:
    """Per-layer sensitivity of the quantization in ``qdq_path`` over ``inputs`` ``[N, 3, R, R]``."""
    import onnx
    from onnxruntime.quantization.qdq_loss_debug import create_weight_matching

    from .onnx_static import input_name_of

    qdq_model = onnx.load(str(qdq_path), load_external_data=False)
    float_model = onnx.load(str(float_path), load_external_data=False)
    quantized = activation_quantization(qdq_model)
    consumers: dict[str, list] = {}
    for node in float_model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    float_nodes = {n.name: n for n in float_model.graph.node}
    root = logging.getLogger()
    level = root.level
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # ORT's debug helper logs an ERROR on the root logger for every quantized tensor it cannot pair
            # with a float initializer (int32 biases the quantizer created, e.g. the Dynamic ReLU fold's):
            # unpaired tensors are simply absent from the matches, and only weights are looked up below.
            root.setLevel(logging.CRITICAL)
            matches = create_weight_matching(str(float_path), str(qdq_path))
    finally:
        root.setLevel(level)
    weight_db = {name: sens.sqnr_db(m["float"], m["dequantized"]) for name, m in matches.items()}

    layers = []
    for node in quantized_layers(qdq_model):
        original = float_nodes.get(node.name)
        if original is None:
            continue
        # The weight is input 1 of Conv/Gemm/MatMul (biases are input 2, and zero biases have no SQNR).
        weight = weight_db.get(original.input[1]) if len(original.input) > 1 else None
        layers.append((original, _output_tensor(original, consumers, quantized),
                       sens.INFINITE_DB if weight is None else weight))

    session = _session(_augment(float_path, Path(work_dir) / "float_debug.onnx"))
    input_name = input_name_of(float_path)
    tensors = {t for _, t, _ in layers if t is not None}
    per_input: dict[str, list[float]] = {t: [] for t in tensors}
    for x in inputs:
        values = _run(session, input_name, x)
        for t in tensors:
            if t in values:
                v = values[t]
                per_input[t].append(sens.sqnr_db(v, sens.fake_quantize(v, *quantized[t])))
    return [sens.LayerSensitivity(node.name, node.op_type, node_scope(node),
                                  sens.median_db(per_input[t]) if t is not None else sens.INFINITE_DB,
                                  float(min(w, sens.INFINITE_DB)))
            for node, t, w in layers]
