"""The head layouts every rewritten attention is built from: [B*h, N, c] tokens and [B*h, c, P] maps."""

from __future__ import annotations

import torch
import torch.fx

from ..builder import NodeBuilder
from ..ops import LINEAR, attr_value, is_call
from .operands import Tokens
from .views import shape

aten = torch.ops.aten


def fold_scale_into_linear(emit: NodeBuilder, tokens: Tokens, scale: float) -> bool:
    """Scale the weights of the linear that makes ``tokens``, if that changes nothing else."""
    linear = tokens.source
    if not (tokens.exclusive and tokens.whole and is_call(linear, LINEAR)):
        return False
    gm = emit.gm
    weight = attr_value(gm, linear.args[1])
    bias_node = linear.args[2] if len(linear.args) > 2 else None
    bias = attr_value(gm, bias_node) if bias_node is not None else None
    if weight is None or (bias_node is not None and bias is None):
        return False
    at_linear = NodeBuilder(gm, linear)
    args = [linear.args[0], at_linear.constant("attn_scaled_weight", (weight.double() * scale).float())]
    if bias is not None:
        args.append(at_linear.constant("attn_scaled_bias", (bias.double() * scale).float()))
    linear.args = tuple(args)
    return True


def token_heads(emit: NodeBuilder, tokens: Tokens, order, scale: float = 1.0) -> torch.fx.Node:
    """[B, N, C] tokens -> [B*h, N, c] (``Q_ORDER``) or [B*h, c, N] (``KT_ORDER``), times ``scale``."""
    source = tokens.source
    if not tokens.whole:
        source = emit(aten.slice.Tensor, source, 2, tokens.offset, tokens.offset + tokens.channels)
    if scale != 1.0 and not fold_scale_into_linear(emit, tokens, scale):
        source = emit(aten.mul.Tensor, source, scale)
    split = emit(aten.unflatten.int, source, 2, [tokens.heads, tokens.channels // tokens.heads])  # B, N, h, c
    return emit(aten.flatten.using_ints, emit(aten.permute.default, split, list(order)), 0, 1)


def map_heads(emit: NodeBuilder, x: torch.fx.Node, heads: int) -> torch.fx.Node:
    """[B, C, H, W] -> [B*h, c, HW]: a view, nothing moves."""
    channels = shape(x)[1]
    flat = emit(aten.flatten.using_ints, x, 2)
    return emit(aten.flatten.using_ints, emit(aten.unflatten.int, flat, 1, [heads, channels // heads]), 0, 1)


def merge_heads(emit: NodeBuilder, t: torch.fx.Node, heads: int) -> torch.fx.Node:
    """[B*h, a, b] -> [B, h*a, b]."""
    return emit(aten.flatten.using_ints, emit(aten.unflatten.int, t, 0, [-1, heads]), 1, 2)
