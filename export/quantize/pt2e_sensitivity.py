"""Per-node SQNR of a PT2E-quantized graph against its float twin.

The float reference is a copy of the *prepared* graph taken right after
calibration: it has the same nodes as the converted graph (batch norms already
folded into convolutions by ``prepare_pt2e``) and its observers pass values
through unchanged, so every compute node of the converted graph has a
same-named float counterpart. Both graphs run on the same inputs through a
``torch.fx.Interpreter`` that records the nodes we need, and signal/noise
powers are accumulated one input at a time.

A node is a quantized layer if any of its inputs is a ``dequantize_*`` node.
Its input SQNR is that of the tensors that were quantized to feed it (the
values entering the ``quantize_*`` node), its output SQNR that of its own
output; see :mod:`.sensitivity` for the rule built on them.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.fx

from . import sensitivity as sens


def _is_qdq(node: torch.fx.Node) -> bool:
    target = getattr(node.target, "__name__", str(node.target))
    return node.op == "call_function" and ("quantize_per" in target or "dequantize_per" in target
                                           or "choose_qparams" in target)


def _is_dequantize(node) -> bool:
    return isinstance(node, torch.fx.Node) and _is_qdq(node) and "dequantize" in str(node.target)


def _source_before_quantize(node: torch.fx.Node) -> torch.fx.Node | None:
    """The float tensor a dequantize node's value was quantized from (None for a constant weight)."""
    current = node
    while isinstance(current, torch.fx.Node) and _is_qdq(current):
        if not current.args or not isinstance(current.args[0], torch.fx.Node):
            return None
        current = current.args[0]
    if current.op in ("get_attr",):
        return None
    return current


def quantized_layers(graph: torch.fx.Graph) -> list[tuple[torch.fx.Node, list[str]]]:
    """(node, names of activations quantized to feed it) for nodes fed by a dequantize."""
    layers = []
    for node in graph.nodes:
        if node.op != "call_function" or _is_qdq(node):
            continue
        inputs = [a for a in node.all_input_nodes]
        if not any(_is_dequantize(a) for a in inputs):
            continue
        activations = []
        for a in inputs:
            source = _source_before_quantize(a) if _is_dequantize(a) else a
            if source is not None and source.op != "get_attr":
                activations.append(source.name)
        layers.append((node, activations))
    return layers


class _Recorder(torch.fx.Interpreter):
    def __init__(self, module: torch.fx.GraphModule, names: set[str]):
        super().__init__(module)
        self.names = names
        self.values: dict[str, torch.Tensor] = {}

    def run_node(self, n):
        out = super().run_node(n)
        if n.name in self.names and isinstance(out, torch.Tensor):
            self.values[n.name] = out.detach()
        return out


def _scope(node: torch.fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path = list(stack.values())[-1][0]
    return str(path)


def measure_layers(reference: torch.fx.GraphModule, quantized: torch.fx.GraphModule,
                   inputs: np.ndarray) -> list[sens.LayerSensitivity]:
    """Per-layer sensitivity of ``quantized`` against ``reference`` over ``inputs`` ``[N, 3, R, R]``."""
    layers = quantized_layers(quantized.graph)
    reference_nodes = {n.name for n in reference.graph.nodes}
    layers = [(n, [a for a in acts if a in reference_nodes]) for n, acts in layers if n.name in reference_nodes]
    wanted = {name for node, acts in layers for name in [*acts, node.name]}
    signal = dict.fromkeys(wanted, 0.0)
    noise = dict.fromkeys(wanted, 0.0)
    placeholders = {n.name for n in quantized.graph.nodes if n.op == "placeholder"}
    with torch.no_grad():
        for x in inputs:
            tensor = torch.from_numpy(np.ascontiguousarray(x[None], dtype=np.float32))
            ref = _Recorder(reference, wanted)
            ref.run(tensor)
            got = _Recorder(quantized, wanted)
            got.run(tensor)
            for name in wanted:
                a, b = ref.values.get(name), got.values.get(name)
                if a is None or b is None or a.shape != b.shape or not a.is_floating_point():
                    continue
                a64 = a.double()
                signal[name] += float((a64 ** 2).sum())
                noise[name] += float(((a64 - b.double()) ** 2).sum())

    def db(name: str) -> float:
        if name in placeholders or name not in signal or noise[name] == 0.0:
            return sens.INFINITE_DB
        if signal[name] == 0.0:
            return -sens.INFINITE_DB
        return float(min(sens.INFINITE_DB, 10.0 * np.log10(signal[name] / noise[name])))

    return [sens.layer(node.name, str(getattr(node.target, "__name__", node.target)), _scope(node),
                       min((db(a) for a in acts), default=sens.INFINITE_DB), db(node.name))
            for node, acts in layers]
