"""Per-layer int8 sensitivity of a PT2E-quantized graph, measured on float values.

The float reference is a copy of the *prepared* graph taken right after
calibration: it has the same compute nodes as the converted graph (batch
norms already folded into convolutions by ``prepare_pt2e``) and its observers
pass values through unchanged. It runs on each calibration input through a
``torch.fx.Interpreter`` that records the values we need; each activation the
converted graph quantizes (a ``quantize_per_tensor`` node, with the scale and
zero point calibration chose) is rounded here and compared with itself, and
each int8 weight (the output of its ``dequantize_per_channel`` node) with the
float weight. See :mod:`.sensitivity` for why, and for the rule.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.fx

from . import sensitivity as sens


def _name(node: torch.fx.Node) -> str:
    return getattr(node.target, "__name__", str(node.target))


def _is_qdq(node) -> bool:
    if not isinstance(node, torch.fx.Node) or node.op != "call_function":
        return False
    name = _name(node)
    return "quantize_per" in name or "dequantize_per" in name or "choose_qparams" in name


def _is_dequantize(node) -> bool:
    return _is_qdq(node) and _name(node).startswith("dequantize")


def _is_quantize(node) -> bool:
    return _is_qdq(node) and _name(node).startswith("quantize")


def compute_consumers(node: torch.fx.Node) -> list[torch.fx.Node]:
    """The nodes that read ``node``'s value, looking through quantize/dequantize nodes."""
    found = []
    for user in node.users:
        if _is_qdq(user):
            found.extend(compute_consumers(user))
        elif user.op == "call_function":
            found.append(user)
    return found


# Activations the XNNPACK quantizer fuses into the op before them (quantized after them).
FUSED_ACTIVATIONS = ("relu", "relu_", "hardtanh", "hardtanh_")


def _output_quantize(node: torch.fx.Node) -> torch.fx.Node | None:
    """The quantize node that rounds ``node``'s result (directly or after a fused ReLU)."""
    for user in node.users:
        if _is_quantize(user):
            return user
    users = list(node.users)
    if len(users) == 1 and _name(users[0]).split(".")[0] in FUSED_ACTIVATIONS:
        return next((u for u in users[0].users if _is_quantize(u)), None)
    return None


class _Recorder(torch.fx.Interpreter):
    def __init__(self, module: torch.fx.GraphModule, names: set[str]):
        super().__init__(module)
        self.names = names
        self.values: dict[str, torch.Tensor] = {}

    def run_node(self, n):
        out = super().run_node(n)
        if n.name in self.names and isinstance(out, torch.Tensor):
            self.values[n.name] = out.detach().clone()  # in-place ops (relu_, hardswish_) would overwrite it
        return out


def _scope(node: torch.fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    return str(list(stack.values())[-1][0]) if stack else ""


def quantized_layers(graph: torch.fx.Graph) -> list[torch.fx.Node]:
    return [n for n in graph.nodes if n.op == "call_function" and not _is_qdq(n)
            and any(_is_dequantize(a) for a in n.all_input_nodes)]


def measure_layers(reference: torch.fx.GraphModule, quantized: torch.fx.GraphModule,
                   inputs: np.ndarray) -> list[sens.LayerSensitivity]:
    """Per-layer sensitivity of the quantization in ``quantized`` over ``inputs`` ``[N, 3, R, R]``."""
    reference_nodes = {n.name: n for n in reference.graph.nodes}
    records = []  # (node, quantize node of its result or None, weight dq node or None)
    for node in quantized_layers(quantized.graph):
        if node.name not in reference_nodes:
            continue
        weight = next((a for a in node.all_input_nodes if _is_dequantize(a) and "per_channel" in _name(a)), None)
        records.append((node, _output_quantize(node), weight))

    # Float values: the result each quantize node rounds (its input, by name in the reference) and the weights.
    wanted_reference, wanted_quantized = set(), set()
    for node, q, weight in records:
        if q is not None and isinstance(q.args[0], torch.fx.Node):
            wanted_reference.add(q.args[0].name)
        if weight is not None:
            wanted_quantized.add(weight.name)
            index = node.args.index(weight)
            arg = reference_nodes[node.name].args[index]
            if isinstance(arg, torch.fx.Node):
                wanted_reference.add(arg.name)

    per_input: dict[str, list[float]] = {}
    weight_db: dict[str, float] = {}
    with torch.no_grad():
        for i, x in enumerate(inputs):
            tensor = torch.from_numpy(np.ascontiguousarray(x[None], dtype=np.float32))
            ref = _Recorder(reference, wanted_reference)
            ref.run(tensor)
            if i == 0:  # weights do not depend on the input
                got = _Recorder(quantized, wanted_quantized)
                got.run(tensor)
            for node, q, weight in records:
                if q is not None and q.args[0].name in ref.values:
                    value = ref.values[q.args[0].name].numpy()
                    scale, zero, qmin, qmax = (float(a) if not isinstance(a, torch.fx.Node) else None
                                               for a in q.args[1:5])
                    if scale is not None:
                        per_input.setdefault(node.name, []).append(
                            sens.sqnr_db(value, sens.fake_quantize(value, scale, zero, qmin, qmax)))
                if i == 0 and weight is not None:
                    arg = reference_nodes[node.name].args[node.args.index(weight)]
                    if isinstance(arg, torch.fx.Node) and arg.name in ref.values and weight.name in got.values:
                        weight_db[node.name] = sens.sqnr_db(ref.values[arg.name].numpy(),
                                                            got.values[weight.name].numpy())
    return [sens.LayerSensitivity(node.name, _name(node).split(".")[0], _scope(node),
                                  sens.median_db(per_input.get(node.name, [])),
                                  weight_db.get(node.name, sens.INFINITE_DB))
            for node, _, _ in records]
