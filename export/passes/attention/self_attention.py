"""Token self-attention as ``bmm -> softmax -> bmm`` on [B*h, N, c] operands.

The Former, DeiT and CMT split Q, K and V of [B, N, C] tokens into heads,
optionally with a constant scale on Q or the scores and an additive bias.
The 4-D matmuls decompose into broadcasting ``expand`` copies that
ExecuTorch's XNNPACK delegate does not take, each of which split the
delegated graph; batched 3-D matmuls do not.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.fx

from ..base import check
from ..builder import NodeBuilder
from ..ops import val
from .heads import token_heads
from .operands import KT_ORDER, Q_ORDER, Frame, Tokens, strip_scale, token_operand
from .rule import AttentionRule
from .views import check_tail, index, shape, view_chain

aten = torch.ops.aten


@dataclass
class SelfAttentionSite:
    q: Tokens
    k: Tokens
    v: Tokens
    heads: int
    scale: float
    bias: torch.fx.Node | None
    result: torch.fx.Node


class SelfAttention(AttentionRule):
    name = "self_attention"

    def claims(self, frame: Frame) -> bool:
        return True  # the fallback: a [B, N, h, c] head split can pass for a map, so bridges that fail end here

    def match(self, frame: Frame) -> SelfAttentionSite:
        q_node, q_scale = strip_scale(frame.scores.args[0], "Q")
        k_node, k_scale = strip_scale(frame.scores.args[1], "K")
        q = token_operand(view_chain(q_node), Q_ORDER, "Q")
        k = token_operand(view_chain(k_node), KT_ORDER, "K")
        v = token_operand(view_chain(frame.out.args[1]), Q_ORDER, "V")
        check(q.heads == k.heads == v.heads, "Q, K and V have different head counts")
        check(q.channels == k.channels, "Q and K have different widths")
        b, n = shape(q.source)[:2]
        if frame.bias is not None:
            bias_shape = shape(frame.bias)
            check(b == 1 and len(bias_shape) in (2, 3, 4) and (len(bias_shape) < 4 or bias_shape[0] == 1)
                  and (len(bias_shape) < 3 or bias_shape[-3] in (1, q.heads)),
                  "the score bias does not broadcast over a batch of one as [h, N, N']")
        heads = q.heads
        expected = index((b, heads, n, v.channels // heads)).transpose(1, 2).reshape(b, n, v.channels)
        result = check_tail(frame.out, expected, "reassembled into [B, N, C] tokens in head-major channel order")
        return SelfAttentionSite(q, k, v, heads, frame.scale * q_scale * k_scale, frame.bias, result)

    def rewrite(self, gm, site: SelfAttentionSite) -> dict:
        emit = NodeBuilder(gm, site.result)
        q_heads = token_heads(emit, site.q, Q_ORDER, site.scale)  # B*h, N, c
        k_heads_t = token_heads(emit, site.k, KT_ORDER)  # B*h, c, N'
        v_heads = token_heads(emit, site.v, Q_ORDER)  # B*h, N', c
        scores = emit(aten.bmm.default, q_heads, k_heads_t)  # B*h, N, N'
        if site.bias is not None:
            bias = site.bias
            rank = val(bias).dim()
            if rank == 4:
                bias = emit(aten.flatten.using_ints, bias, 0, 1)
            elif rank == 2:
                bias = emit(aten.unsqueeze.default, bias, 0)
            scores = emit(aten.add.Tensor, scores, bias)
        out = emit(aten.bmm.default, emit(aten.softmax.int, scores, -1), v_heads)  # B*h, N, c
        split = emit(aten.unflatten.int, out, 0, [-1, site.heads])  # B, h, N, c
        site.result.replace_all_uses_with(emit(aten.flatten.using_ints, emit(aten.transpose.int, split, 1, 2), 2))
        return {}
