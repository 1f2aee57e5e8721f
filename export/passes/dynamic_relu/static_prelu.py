"""Dynamic ReLU with constant slopes: a per-channel PReLU, evaluated at export time.

When the slopes do not depend on the network input (the hyper-function reads
a constant), ``p = max(a1, a2)`` and ``n = min(a1, a2)`` are computed now and
``max(a1 x, a2 x) = p * prelu(x, n / p)`` where every ``p > 0``. When the
only consumer is a conv, ``p`` goes into that conv's input channels instead
(scaling an input channel commutes with its zero padding). With a channel
whose ``p <= 0`` it becomes ``n x + (p - n) relu(x)`` with constant ``p, n``.
"""

from __future__ import annotations

import torch
import torch.fx

from ..base import check
from ..builder import NodeBuilder, add_constant
from ..ops import CONV2D_ANY, MUL, attr_value, conv_arguments, is_call
from .site import Site

aten = torch.ops.aten


def evaluate_constants(gm: torch.fx.GraphModule, nodes: list[torch.fx.Node]) -> list[torch.Tensor]:
    """Values of nodes that depend on no input, computed from the graph's own attributes."""
    needed: set[torch.fx.Node] = set()
    stack = list(nodes)
    while stack:
        n = stack.pop()
        if n not in needed:
            needed.add(n)
            stack.extend(n.all_input_nodes)
    graph = torch.fx.Graph()
    env: dict[torch.fx.Node, torch.fx.Node] = {}
    for n in gm.graph.nodes:
        if n in needed:
            env[n] = graph.node_copy(n, lambda m: env[m])
    graph.output(tuple(env[n] for n in nodes))
    with torch.no_grad():
        return list(torch.fx.GraphModule(gm, graph)())


def relu_form(emit: NodeBuilder, x: torch.fx.Node, negative: torch.fx.Node, gap: torch.fx.Node) -> torch.fx.Node:
    """``n x + (p - n) relu(x)``: ``max(a1 x, a2 x)`` with ``n = min(a1, a2)`` and ``gap = p - n``."""
    return emit(aten.add.Tensor, emit(MUL, x, negative), emit(MUL, emit(aten.relu.default, x), gap))


def scale_conv_input(gm: torch.fx.GraphModule, conv: torch.fx.Node, source: torch.fx.Node, scale: torch.Tensor) -> bool:
    """Fold a per-channel scale of ``conv``'s input into its weight; ``False`` if it cannot."""
    if not (is_call(conv, CONV2D_ANY) and conv.args[0] is source):
        return False
    weight = attr_value(gm, conv.args[1])
    groups = conv_arguments(conv)["groups"]
    if weight is None or weight.shape[1] * groups != scale.numel():
        return False
    per_group = scale.reshape(groups, -1).repeat_interleave(weight.shape[0] // groups, dim=0)  # [O, C/groups]
    scaled = weight.double() * per_group.double().reshape(*per_group.shape, *(1,) * (weight.dim() - 2))
    args = list(conv.args)
    args[1] = add_constant(gm, conv, "prelu_conv_weight", scaled.to(weight.dtype))
    conv.args = tuple(args)
    return True


def static_prelu(gm: torch.fx.GraphModule, site: Site) -> torch.fx.Node:
    """The constant-slope site as a PReLU (its positive scale folded into the next conv if it can be)."""
    x_val = site.x.meta["val"]
    a1, a2 = evaluate_constants(gm, list(site.slopes))
    check(all(a.dim() == x_val.dim() and a.shape[0] == 1 for a in (a1, a2)), "slopes vary over the batch")
    channels = x_val.shape[1]
    p = torch.maximum(a1, a2).expand(1, channels, *a1.shape[2:]).contiguous()
    n = torch.minimum(a1, a2).expand_as(p).contiguous()
    emit = NodeBuilder(gm, site.node)
    if not bool((p > 0).all()):
        return relu_form(emit, site.x, emit.constant("dyrelu_negative", n), emit.constant("dyrelu_gap", p - n))
    y = emit(aten.prelu.default, site.x, emit.constant("prelu_weight", (n / p).flatten()))
    users = list(site.node.users)
    if len(users) == 1 and scale_conv_input(gm, users[0], site.node, p.flatten()):
        return y
    return emit(MUL, y, emit.constant("prelu_scale", p))
