"""Weight-only int8 for ONNX: int8 weights + ``DequantizeLinear``, float activations.

Each Conv / Gemm / MatMul weight initializer ``W`` (float32) is replaced by

    W_q = round(W / s_c)  (int8, |W_q| <= 127),   s_c = max|W[c, ...]| / 127

with one scale per output channel ``c``, and a ``DequantizeLinear(W_q, s, axis)``
node recomputes ``s_c * W_q`` in front of the op, so activations and compute
stay fp32 and only weight rounding noise is added (no calibration needed).

Why this and not the alternatives ONNX Runtime ships: ``quantize_dynamic``
also quantizes activations at run time (ConvInteger / MatMulInteger), which is
more than "weights only" and has no fast CPU path for convolutions;
``MatMulNBits`` covers MatMul alone, while these models carry most weights in
convolutions. The QDQ weights-only form works for every op, is 4x smaller on
disk, and is what the ``DQ -> MatMul`` fusions of newer runtimes recognise.
The cost: ONNX Runtime dequantizes the weights on each run (a few percent of
a small model's latency) instead of folding them at load.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

MIN_ELEMENTS = 64  # tiny weights (e.g. 1x1 heads of a few channels) are not worth a DQ node


@dataclass
class WeightOnlyResult:
    path: Path
    quantized: list[str]
    scheme: dict


def _weight_axis(node, initializer_dims: int) -> tuple[int, int] | None:
    """(input index of the weight, its output-channel axis) for ops we quantize, else None."""
    if node.op_type == "Conv":
        return 1, 0
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return 1, 0 if trans_b else 1
    if node.op_type == "MatMul" and initializer_dims == 2:
        return 1, 1
    return None


def quantize_weights(float_path: Path, out_path: Path, only_nodes: set[str] | None = None) -> WeightOnlyResult:
    """Write ``out_path``: ``float_path`` with int8 per-channel weights behind DequantizeLinear.

    ``only_nodes`` limits it to those node names (the float layers of a static int8 model).
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(float_path))
    initializers = {i.name: i for i in model.graph.initializer}
    consumers: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1

    new_nodes, done, replaced = [], {}, []
    for node in model.graph.node:
        weight_name = node.input[1] if len(node.input) > 1 else None
        init = initializers.get(weight_name) if weight_name else None
        spot = _weight_axis(node, len(init.dims)) if init is not None else None
        if only_nodes is not None and node.name not in only_nodes:
            spot = None
        if spot is None or init.data_type != onnx.TensorProto.FLOAT or np.prod(init.dims) < MIN_ELEMENTS:
            new_nodes.append(node)
            continue
        index, axis = spot
        if weight_name not in done:
            w = numpy_helper.to_array(init).astype(np.float32)
            reduce = tuple(i for i in range(w.ndim) if i != axis)
            scale = np.max(np.abs(w), axis=reduce) / 127.0
            scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
            shape = [1] * w.ndim
            shape[axis] = -1
            q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
            q_name, s_name, out_name = f"{weight_name}_int8", f"{weight_name}_scale", f"{weight_name}_dequantized"
            model.graph.initializer.extend([
                numpy_helper.from_array(q, q_name),
                numpy_helper.from_array(scale, s_name),
                numpy_helper.from_array(np.zeros_like(scale, dtype=np.int8), f"{weight_name}_zero_point"),
            ])
            new_nodes.append(helper.make_node("DequantizeLinear", [q_name, s_name, f"{weight_name}_zero_point"],
                                              [out_name], name=f"{weight_name}_DequantizeLinear", axis=axis))
            done[weight_name] = out_name
            replaced.append(weight_name)
        node.input[index] = done[weight_name]
        new_nodes.append(node)

    still_used = {name for node in new_nodes for name in node.input}
    kept = [i for i in model.graph.initializer if i.name in still_used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    del model.graph.node[:]
    model.graph.node.extend(new_nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))
    scheme = {"format": "QDQ weights only", "weights": "int8, symmetric, per output channel",
              "activations": "fp32", "ops": "Conv, Gemm, MatMul with a constant weight"}
    return WeightOnlyResult(Path(out_path), replaced, scheme)
