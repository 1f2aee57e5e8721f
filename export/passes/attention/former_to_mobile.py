"""Mobile<-Former: the feature map reads the tokens, and stays [B*h, c, P] throughout.

With ``k, v = proj(z)`` [B, T, C] and the raw map as queries::

    s = (s_q k)_h @ x_h            [B*h, T, P]   scores[b,t,p] = sum_c k[b,t,c] x[b,c,p]
    a = softmax(s, over T)         the tiny axis: ``mobexport::token_softmax``, lowered per target
                                   (ONNX: reductions over T; XNNPACK: transpose, last-axis softmax)
    x' = x + v_h^T @ a             [B*h, c, P] is NCHW; the residual is added on [B, C, P]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.fx

from mobexport.kernels import token_softmax

from ..base import check
from ..builder import NodeBuilder
from ..ops import ADD, is_call
from .heads import map_heads, merge_heads, token_heads
from .operands import KT_ORDER, Q_ORDER, Frame, Tokens, check_map_operand, token_operand
from .rule import AttentionRule
from .views import check_tail, index, map_view, shape, view_chain

aten = torch.ops.aten


@dataclass
class FormerToMobileSite:
    k: Tokens
    v: Tokens
    feature_map: torch.fx.Node
    heads: int
    scale: float
    result: torch.fx.Node


def _residual_add(site: FormerToMobileSite) -> torch.fx.Node | None:
    """The ``x + attention(x)`` node after the site, if that is its only use."""
    users = list(site.result.users)
    if len(users) != 1:
        return None
    add = users[0]
    if not is_call(add, ADD) or len(add.args) != 2 or add.kwargs.get("alpha", 1) != 1:
        return None
    return add if set(add.args) == {site.feature_map, site.result} else None


class FormerToMobile(AttentionRule):
    name = "former_to_mobile"

    def claims(self, frame: Frame) -> bool:
        return (map_view(view_chain(frame.scores.args[1])) is None
                and map_view(view_chain(frame.scores.args[0])) is not None)

    def match(self, frame: Frame) -> FormerToMobileSite:
        check(frame.bias is None, "a bias on attention scores against a feature map")
        chain_q = map_view(view_chain(frame.scores.args[0]))
        x = chain_q.base
        heads = shape(frame.scores.args[0])[1]
        check_map_operand(chain_q, heads, True, "Q")
        k = token_operand(view_chain(frame.scores.args[1]), KT_ORDER, "K")
        v = token_operand(view_chain(frame.out.args[1]), Q_ORDER, "V")
        map_shape = shape(x)
        check(k.channels == map_shape[1] and v.channels == map_shape[1],
              "K/V and the feature map have different channel counts")
        b, c_all, hh, ww = map_shape
        expected = index((b, heads, hh * ww, c_all // heads)).transpose(-1, -2).reshape(map_shape)
        result = check_tail(frame.out, expected, "reassembled into the [B, C, H, W] map in head-major channel order")
        return FormerToMobileSite(k, v, x, heads, frame.scale, result)

    def rewrite(self, gm, site: FormerToMobileSite) -> dict:
        """Rewrite; reports whether the residual ``x + .`` moved onto [B, C, P] with it."""
        emit = NodeBuilder(gm, site.result)
        x = site.feature_map
        k_heads = token_heads(emit, site.k, Q_ORDER, site.scale)  # B*h, T, c
        v_heads_t = token_heads(emit, site.v, KT_ORDER)  # B*h, c, T
        x_heads = map_heads(emit, x, site.heads)  # B*h, c, P
        # Softmax over T, the tiny axis: no one ATen spelling is fastest everywhere (token_softmax's docstring).
        attn = emit(token_softmax.OP, emit(aten.bmm.default, k_heads, x_heads))  # B*h, T, P
        out = merge_heads(emit, emit(aten.bmm.default, v_heads_t, attn), site.heads)  # B, C, P
        residual = _residual_add(site)
        if residual is None:
            site.result.replace_all_uses_with(emit(aten.reshape_as.default, out, x))
            return {"residual_adds_on_bcp": 0}
        # On XNNPACK the sum then stays in the layout the next bridge reads (no NHWC round trip).
        emit = NodeBuilder(gm, residual)
        summed = emit(aten.add.Tensor, emit(aten.flatten.using_ints, x, 2), out)
        residual.replace_all_uses_with(emit(aten.reshape_as.default, summed, x))
        return {"residual_adds_on_bcp": 1}
