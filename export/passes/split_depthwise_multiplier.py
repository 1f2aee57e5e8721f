"""Split a depthwise conv with a channel multiplier into plain depthwise convs.

Mobile-Former's stem block and its stride-2 ("D") blocks widen the feature map
inside a depthwise conv: ``groups = C`` input channels, ``m C`` output
channels, weight ``[m C, 1, k, k]``. Output channel ``c m + j`` reads only
input channel ``c`` through filter ``w[c m + j]``. Runtimes have a fast
kernel for ``m = 1`` (XNNPACK's DWConv, MLAS's depthwise path) and fall back
to a grouped GEMM with ``m`` columns per group otherwise. On XNNPACK that
fallback was the largest single cost in Mobile-Former-294M: 6.2 ms of 23 ms
at 224 on one thread, 2.8 ms of it in one ``16 -> 32`` conv at 112x112.

Taking every ``m``-th filter gives ``m`` ordinary depthwise convs over the
same input::

    y_j = conv(x, w[j::m], b[j::m], groups=C)         # [N, C, H', W'], j = 0..m-1
    y[:, c m + j] = y_j[:, c]                         # interleave the channels
    y = stack((y_0, ..., y_{m-1}), dim=2).flatten(1, 2)

Each ``y_j`` does ``1/m`` of the original MACs (the total is unchanged) and
the interleave is one copy of the output. Stride, padding and dilation apply
to each group alone, so every form of the conv splits.

Candidates are convs with one input channel per group and ``m > 1``; a
grouped conv whose groups read several channels is not one. Refuses a
candidate whose weight or bias is computed rather than constant.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.fx

from .base import GraphPass, PassResult, call_nodes, check
from .builder import NodeBuilder
from .ops import CONV2D_ANY, attr_value, conv_arguments

aten = torch.ops.aten


def multiplier(gm: torch.fx.GraphModule, conv: torch.fx.Node) -> int:
    """The channel multiplier ``m`` of a depthwise conv (one input channel per group); 1 for anything else."""
    if conv.op != "call_function" or conv.target not in CONV2D_ANY:
        return 1
    a = conv_arguments(conv)
    weight = attr_value(gm, a["weight"])
    if weight is None and isinstance(a["weight"], torch.fx.Node):
        weight = a["weight"].meta.get("val")  # a computed weight: a candidate that check_splittable refuses
    groups = a["groups"]
    if weight is None or weight.dim() != 4 or weight.shape[1] != 1 or not isinstance(groups, int) or groups < 2:
        return 1
    return weight.shape[0] // groups  # a conv's output channels always divide into its groups


@dataclass
class Split:
    conv: torch.fx.Node
    m: int
    weight: torch.Tensor
    bias: torch.Tensor | None


def check_splittable(gm: torch.fx.GraphModule, conv: torch.fx.Node) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The conv's constant weight and bias; raise :class:`Mismatch` if either is computed."""
    a = conv_arguments(conv)
    weight = attr_value(gm, a["weight"])
    check(weight is not None, "conv weight is not a constant")
    bias = attr_value(gm, a["bias"]) if a["bias"] is not None else None
    check(a["bias"] is None or bias is not None, "conv bias is not a constant")
    return weight, bias


class SplitDepthwiseMultiplierPass(GraphPass):
    id = "split_depthwise_multiplier"
    after = ("fold_batchnorm",)
    description = "depthwise conv with channel multiplier m -> m plain depthwise convs, channels interleaved"

    def start(self, gm) -> dict:
        return {"convs_split": {}}

    def candidates(self, gm):
        return [conv for conv in call_nodes(gm, CONV2D_ANY) if multiplier(gm, conv) > 1]

    def match(self, gm, conv: torch.fx.Node) -> Split:
        return Split(conv, multiplier(gm, conv), *check_splittable(gm, conv))

    def rewrite(self, gm, site: Split, result: PassResult) -> None:
        conv, m = site.conv, site.m
        emit = NodeBuilder(gm, conv)
        pieces = []
        for j in range(m):
            args = list(conv.args)
            args[1] = emit.constant("dw_split_weight", site.weight[j::m].contiguous())
            if site.bias is not None:
                args[2] = emit.constant("dw_split_bias", site.bias[j::m].contiguous())
            pieces.append(emit(conv.target, *args, **conv.kwargs))
        merged = emit(aten.flatten.using_ints, emit(aten.stack.default, pieces, 2), 1, 2, like=conv)
        conv.replace_all_uses_with(merged)
        gm.graph.erase_node(conv)
        result.details["convs_split"][conv.name] = m
