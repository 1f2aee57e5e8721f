"""Per-node SQNR of a QDQ ONNX model against its float original.

Both models are augmented with ONNX Runtime's own debugging helper
(``qdq_loss_debug.modify_model_output_intermediate_tensors``) so that every
float tensor is also a graph output, then run side by side on the same inputs
with graph optimizations off (so the QDQ model computes exactly what its
Q/DQ nodes say). Signal and noise powers are accumulated per tensor, one input
at a time, so memory stays at one sample's activations.

A node is a quantized layer if any of its inputs comes from a
``DequantizeLinear``. Its input SQNR is that of the values it consumed, its
output SQNR that of its output after its own quantize/dequantize (a fused
activation such as a removed Relu included); see :mod:`.sensitivity` for the
rule built on them.
"""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import numpy as np

from . import sensitivity as sens

SAVED_SUFFIX = "_ReshapedSavedOutput"
RENAMED_OUTPUT = "_QuantizeLinear_Input"
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


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


def _float_name(name: str) -> str:
    """The float model's name of a QDQ-model tensor (ORT renames a graph output's producer)."""
    return name[: -len(RENAMED_OUTPUT)] if name.endswith(RENAMED_OUTPUT) else name


def quantized_layers(qdq_model) -> list[tuple[object, list[tuple[str, str]], tuple[str, str]]]:
    """For each node fed by a DequantizeLinear: (node, its activation inputs, its output).

    Tensors are (float-model name, QDQ-model name) pairs, the QDQ side being the
    value after quantize/dequantize: what the node consumed, and what its
    consumers will read. So a layer's added noise covers its weights, its
    arithmetic and its output rounding, and every rounding is counted once.
    """
    initializers = {i.name for i in qdq_model.graph.initializer}
    producer = {out: node for node in qdq_model.graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in qdq_model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    layers = []
    for node in qdq_model.graph.node:
        if node.op_type in QDQ_OPS:
            continue
        fed_by_dq = False
        activations = []
        for name in node.input:
            if not name or name in initializers:
                continue
            dq = producer.get(name)
            if dq is None or dq.op_type != "DequantizeLinear":
                activations.append((_float_name(name), name))
                continue
            fed_by_dq = True
            q = producer.get(dq.input[0])
            if q is not None and q.op_type == "QuantizeLinear":
                activations.append((_float_name(q.input[0]), name))
        if not fed_by_dq:
            continue
        out = node.output[0]
        after = out
        q = next((c for c in consumers.get(out, []) if c.op_type == "QuantizeLinear"), None)
        if q is not None:
            dq = next((c for c in consumers.get(q.output[0], []) if c.op_type == "DequantizeLinear"), None)
            after = dq.output[0] if dq is not None else out
        layers.append((node, activations, (_float_name(out), after)))
    return layers


def measure_layers(float_path: Path, qdq_path: Path, inputs: np.ndarray, work_dir: Path) -> list[sens.LayerSensitivity]:
    """Per-layer sensitivity of ``qdq_path`` against ``float_path`` over ``inputs`` ``[N, 3, R, R]``."""
    import onnx

    from .onnx_static import input_name_of

    work_dir = Path(work_dir)
    float_session = _session(_augment(float_path, work_dir / "float_debug.onnx"))
    qdq_session = _session(_augment(qdq_path, work_dir / "qdq_debug.onnx"))
    input_name = input_name_of(float_path)
    qdq_model = onnx.load(str(qdq_path), load_external_data=False)
    float_model = onnx.load(str(float_path), load_external_data=False)
    scopes = {n.name: node_scope(n) for n in float_model.graph.node}
    layers = quantized_layers(qdq_model)
    pairs = {pair for _, acts, out in layers for pair in [*acts, out]}

    signal: dict[tuple, float] = dict.fromkeys(pairs, 0.0)
    noise: dict[tuple, float] = dict.fromkeys(pairs, 0.0)
    seen: set[tuple] = set()
    for x in inputs:
        reference = _run(float_session, input_name, x)
        candidate = _run(qdq_session, input_name, x)
        for pair in pairs:
            ref, got = reference.get(pair[0]), candidate.get(pair[1])
            if ref is None or got is None or ref.size != got.size:
                continue
            ref = ref.astype(np.float64).ravel()
            signal[pair] += float(np.sum(ref ** 2))
            noise[pair] += float(np.sum((ref - got.ravel()) ** 2))
            seen.add(pair)

    def db(pair: tuple) -> float:
        if pair not in seen or noise[pair] == 0.0:
            return sens.INFINITE_DB  # the graph input, or identical values: no quantization noise
        if signal[pair] == 0.0:
            return -sens.INFINITE_DB
        return float(min(sens.INFINITE_DB, 10.0 * np.log10(signal[pair] / noise[pair])))

    result = []
    for node, activations, out in layers:
        sqnr_in = min((db(a) for a in activations), default=sens.INFINITE_DB)
        result.append(sens.layer(node.name, node.op_type, scopes.get(node.name, ""), sqnr_in, db(out)))
    return result
