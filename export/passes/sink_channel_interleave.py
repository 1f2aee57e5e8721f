"""Replace a channel interleave by a concatenation; permute the weights downstream instead.

``split_depthwise_multiplier`` leaves ``y = stack((y_0, ..., y_{m-1}), 2).flatten(1, 2)``:
channel ``c m + j`` of ``y`` is channel ``c`` of ``y_j``. A runtime copies
that through a layout change: on XNNPACK (NHWC inside the delegate) the
stack's 5-D view becomes a Transpose and a Copy of the whole map. A
concatenation along channels is one contiguous copy::

    z = cat((y_0, ..., y_{m-1}), 1)       # channel j C + c of z is channel c of y_j
    y = z[:, σ],   σ(c m + j) = j C + c    # the interleave is a fixed permutation of z

The permutation then sinks through every op that treats channels alike, and
into the weights of the convs that read the result. With ``τ = σ⁻¹``
(``τ(j C + c) = c m + j``):

    a * y        = (a[τ] * z)[:, σ]        # a per-channel operand: [.., mC, 1, 1], a constant or
                                           #   a constant Linear's output (its rows permuted)
    f(y)         = f(z)[:, σ]              # f elementwise: relu, clamp, max of two permuted maps, ...
    W ⋆ y        = W[:, τ] ⋆ z             # an ungrouped conv: its input channels permuted

so nothing is left to permute at run time. Mobile-Former's interleaves feed
``max(a1 y, a2 y)`` (its Dynamic ReLU, ``a`` from the hyper-function's
Linear) and then a 1x1 conv. (Mobile-Former-26M's interleaves are undone by
a shuffle and go earlier, in ``cancel_interleave_shuffle``.)

Measured on Mobile-Former-294M with XNNPACK: the Transposes went from 0.71
to 0.21 ms at 224, and the program runs 2-6.5% faster.
**Not on ONNX Runtime by default** (``OnnxTarget.slower_passes``). It keeps
the concatenation in its blocked NCHWc layout and reorders the whole widened
map after it, which counts 1-2% more instructions than the interleave
(``docs/measured/channel_interleave.md``).

**Refuses** an interleave read by anything else: a grouped conv, an op
that mixes channels or positions, an operand that is neither per-channel
nor a scalar, a per-channel operand computed some other way (or used
elsewhere, where a permuted copy would change it), and a graph output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from numbers import Number

import torch
import torch.fx

from .base import GraphPass, PassResult, check
from .builder import NodeBuilder
from .channel_interleave import CHANNELWISE, interleave_pieces, interleaves, sizes
from .ops import ADDS, CONV2D_ANY, DIVS, LINEAR, MAXIMUMS, MULS, SUBS, attr_value, conv_arguments, is_call, val

aten = torch.ops.aten

ELEMENTWISE_BINARY = MULS + ADDS + SUBS + DIVS + MAXIMUMS + (aten.minimum.default,)
ELEMENTWISE_UNARY = CHANNELWISE + (aten.neg.default,)
# Steps between a per-channel Linear's output and the operand they make: each keeps one value per channel.
OPERAND_STEPS = ELEMENTWISE_UNARY + MULS + ADDS + SUBS + DIVS + (aten.unsqueeze.default,)


@dataclass
class Region:
    """Everything the interleave reaches before the convs that mix its channels."""

    interleave: torch.fx.Node
    pieces: list[torch.fx.Node]
    channels: int  # m C
    maps: dict[torch.fx.Node, None] = field(default_factory=dict)  # nodes holding the permuted map, in order
    constants: list[tuple[torch.fx.Node, int]] = field(default_factory=list)  # (user, argument) of a constant operand
    layers: dict[torch.fx.Node, None] = field(default_factory=dict)  # Linears whose rows make an operand
    convs: list[torch.fx.Node] = field(default_factory=list)

    @property
    def permutation(self) -> torch.Tensor:
        """``τ``: position ``j C + c`` of the concatenation holds interleaved channel ``c m + j``."""
        m = len(self.pieces)
        return torch.arange(self.channels).view(self.channels // m, m).t().reshape(-1)


def per_channel(shape: list[int | None], channels: int) -> bool:
    """A value of ``shape`` broadcasts onto ``[N, channels, H, W]`` one number per channel (batch allowed)."""
    return 3 <= len(shape) <= 4 and shape[-3] == channels and shape[-2:] == [1, 1]


def operand_layer(gm: torch.fx.GraphModule, operand: torch.fx.Node, channels: int) -> torch.fx.Node:
    """The constant-weight Linear whose output rows become ``operand``, through per-channel steps only."""
    node = operand
    while not is_call(node, LINEAR):
        check(is_call(node, OPERAND_STEPS), f"{operand.name} is not a constant or made from a linear layer")
        check(len(node.users) == 1, f"{node.name} is also used elsewhere")
        tensors = [a for a in node.args if isinstance(a, torch.fx.Node)]
        check(len(tensors) == 1 and all(isinstance(a, (Number, torch.fx.Node)) or a is None for a in node.args[1:]),
              f"{node.name} is not a per-channel step")
        node = tensors[0]
    check(len(node.users) == 1, f"{node.name} is also used elsewhere")
    weight = attr_value(gm, node.args[1])
    bias = node.args[2] if len(node.args) > 2 else None
    check(weight is not None and weight.shape[0] == channels, f"{node.name}'s weight is not a constant of {channels} rows")
    check(bias is None or attr_value(gm, bias) is not None, f"{node.name}'s bias is not a constant")
    check(val(node) is not None and val(node).dim() == 2, f"{node.name} is not a 2-D linear output")
    return node


def find_region(gm: torch.fx.GraphModule, interleave: torch.fx.Node) -> Region:
    """The interleave's per-channel region, or :class:`Mismatch` naming the first op that breaks it."""
    channels = sizes(interleave)[1]
    check(channels is not None, f"{interleave.name} has a varying channel count")
    region = Region(interleave, interleave_pieces(interleave), channels)
    pending = [interleave]
    while pending:  # every elementwise op downstream holds the permuted map
        node = pending.pop()
        if node not in region.maps:
            region.maps[node] = None
            pending += [u for u in node.users if is_call(u, ELEMENTWISE_UNARY + ELEMENTWISE_BINARY)]
    for node in region.maps:
        for user in node.users:
            check(user.op == "call_function", f"{node.name} is a graph output")
            if user in region.maps:
                continue
            check(is_call(user, CONV2D_ANY), f"{user.name} ({user.target}) is not per-channel")
            a = conv_arguments(user)
            check(a["input"] is node and a["groups"] == 1, f"{user.name} is a grouped conv or reads the map as a weight")
            check(user.args[1] is a["weight"] and attr_value(gm, a["weight"]) is not None,
                  f"{user.name}'s weight is not a constant")
            region.convs.append(user)
        if node is not interleave:
            check_operands(gm, node, region)
    return region


def check_operands(gm: torch.fx.GraphModule, node: torch.fx.Node, region: Region) -> None:
    """Record how each operand of ``node`` that is not the map gets permuted; refuse one that cannot be."""
    if is_call(node, ELEMENTWISE_UNARY):
        check(all(not isinstance(a, torch.fx.Node) for a in node.args[1:]), f"{node.name} takes a tensor argument")
        return
    for i, other in enumerate(node.args[:2]):
        if other in region.maps or isinstance(other, Number):
            continue
        shape = sizes(other) if isinstance(other, torch.fx.Node) else None
        check(shape is not None and (all(d == 1 for d in shape) or per_channel(shape, region.channels)),
              f"{node.name} combines the map with {getattr(other, 'name', other)}, which is not per-channel")
        if all(d == 1 for d in shape):
            continue
        if attr_value(gm, other) is not None:
            region.constants.append((node, i))
        else:
            region.layers[operand_layer(gm, other, region.channels)] = None


class SinkChannelInterleavePass(GraphPass):
    id = "sink_channel_interleave"
    after = ("split_depthwise_multiplier", "cancel_interleave_shuffle", "fold_dynamic_relu")
    description = "channel interleave -> concat, the permutation folded into per-channel operands and the next convs"

    def start(self, gm) -> dict:
        return {"interleaves_sunk": {}}

    def candidates(self, gm):
        return interleaves(gm)

    def match(self, gm, node: torch.fx.Node) -> Region:
        return find_region(gm, node)

    def rewrite(self, gm, region: Region, result: PassResult) -> None:
        tau = region.permutation
        interleave, stack = region.interleave, region.interleave.args[0]
        concat = NodeBuilder(gm, interleave)(aten.cat.default, region.pieces, 1, like=interleave)
        interleave.replace_all_uses_with(concat)
        gm.graph.erase_node(interleave)
        gm.graph.erase_node(stack)
        for user, i in region.constants:
            value = attr_value(gm, user.args[i]).index_select(-3, tau)
            _replace_arg(user, i, NodeBuilder(gm, user).constant("interleave_operand", value))
        for layer in region.layers:
            emit = NodeBuilder(gm, layer)
            _replace_arg(layer, 1, emit.constant("interleave_rows", attr_value(gm, layer.args[1])[tau]))
            if len(layer.args) > 2 and layer.args[2] is not None:
                _replace_arg(layer, 2, emit.constant("interleave_rows", attr_value(gm, layer.args[2])[tau]))
        for conv in region.convs:
            weight = attr_value(gm, conv.args[1])[:, tau]
            _replace_arg(conv, 1, NodeBuilder(gm, conv).constant("interleave_columns", weight))
        result.details["interleaves_sunk"][concat.name] = len(region.pieces)


def _replace_arg(node: torch.fx.Node, i: int, new: torch.fx.Node) -> None:
    args = list(node.args)
    args[i] = new
    node.args = tuple(args)
