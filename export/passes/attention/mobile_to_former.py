"""Mobile->Former: tokens read the feature map, which stays [B*h, c, P].

With ``q = q_proj(z)`` [B, T, C] and the raw map as keys and values::

    s = (s_q q)_h @ x_h            [B*h, T, P]   no copy of x
    a = softmax(s, over P)
    out^T = x_h @ a^T              [B*h, c, T]   a^T is T*P, not C*P
    z' = out^T as [B, T, C]        a tiny transpose
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.fx

from ..base import check
from ..builder import NodeBuilder
from .heads import map_heads, merge_heads, token_heads
from .operands import Q_ORDER, Frame, Tokens, check_map_operand, token_operand
from .rule import AttentionRule
from .views import check_tail, index, map_view, shape, view_chain

aten = torch.ops.aten


@dataclass
class MobileToFormerSite:
    q: Tokens
    feature_map: torch.fx.Node
    heads: int
    scale: float
    result: torch.fx.Node


class MobileToFormer(AttentionRule):
    name = "mobile_to_former"

    def claims(self, frame: Frame) -> bool:
        return map_view(view_chain(frame.scores.args[1])) is not None

    def match(self, frame: Frame) -> MobileToFormerSite:
        check(frame.bias is None, "a bias on attention scores against a feature map")
        chain_k = map_view(view_chain(frame.scores.args[1]))
        chain_v = view_chain(frame.out.args[1])
        chain_v = map_view(chain_v) or chain_v
        x = chain_k.base
        heads = shape(frame.scores.args[1])[1]
        check(chain_v.base is x, "V is not the feature map K is read from")
        check_map_operand(chain_k, heads, False, "K")
        check_map_operand(chain_v, heads, True, "V")
        q = token_operand(view_chain(frame.scores.args[0]), Q_ORDER, "Q")
        check(q.channels == shape(x)[1], "Q and the feature map have different channel counts")
        b, t = shape(q.source)[:2]
        expected = index((b, heads, t, q.channels // heads)).transpose(1, 2).reshape(b, t, q.channels)
        result = check_tail(frame.out, expected, "reassembled into [B, T, C] tokens in head-major channel order")
        return MobileToFormerSite(q, x, heads, frame.scale, result)

    def rewrite(self, gm, site: MobileToFormerSite) -> dict:
        emit = NodeBuilder(gm, site.result)
        q_heads = token_heads(emit, site.q, Q_ORDER, site.scale)  # B*h, T, c
        x_heads = map_heads(emit, site.feature_map, site.heads)  # B*h, c, P
        attn = emit(aten.softmax.int, emit(aten.bmm.default, q_heads, x_heads), -1)  # B*h, T, P
        out_t = emit(aten.bmm.default, x_heads, emit(aten.transpose.int, attn, 1, 2))  # B*h, c, T
        site.result.replace_all_uses_with(emit(aten.transpose.int, merge_heads(emit, out_t, site.heads), 1, 2))
        return {}
