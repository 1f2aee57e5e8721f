"""Spell ``F.scaled_dot_product_attention`` over token heads as ``matmul -> softmax -> matmul``.

``torch.export`` keeps SDPA as one ATen op, so ``attention_to_bmm`` (which
anchors on a softmax) never sees it. Every exporter we target decomposes it
anyway at our opsets and deployment targets (ONNX opset 18 has no attention
op; ExecuTorch's edge dialect and Core ML before iOS 18 lower it to
matmuls), so spelling it out here costs nothing, and lets the next pass make
it the batched 3-D form the runtimes run best::

    sdpa(q, k, v, mask, scale=s) = softmax(s * (q @ k^T) + mask) @ v
    s = 1 / sqrt(c) unless given;  q, k, v: [B, h, N, c]

It is spelled out only where ``attention_to_bmm`` will take it: q, k and v
must each be [B, N, C] tokens split into heads (any view spelling), and the
output must be reassembled into [B, N, C] in head-major channel order.
Elsewhere SDPA stays one op, for runtimes with a fused attention kernel.
Refused, with the reason: a causal mask, dropout, grouped-query attention, a
boolean mask, or operands and output that are not such a head split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.fx

from .attention.operands import Q_ORDER, token_operand
from .attention.views import check_tail, index, shape, view_chain
from .base import GraphPass, PassResult, call_nodes, check
from .builder import NodeBuilder
from .ops import MATMUL, val

aten = torch.ops.aten
SDPA = aten.scaled_dot_product_attention.default


@dataclass
class Attention:
    node: torch.fx.Node
    q: torch.fx.Node
    k: torch.fx.Node
    v: torch.fx.Node
    mask: torch.fx.Node | None
    scale: float


def arguments(node: torch.fx.Node) -> dict:
    names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
    defaults = {"attn_mask": None, "dropout_p": 0.0, "is_causal": False, "scale": None, "enable_gqa": False}
    return {**defaults, **dict(zip(names, node.args)), **node.kwargs}


class SdpaToMatmulPass(GraphPass):
    id = "sdpa_to_matmul"
    after = ()
    description = "scaled_dot_product_attention over token heads becomes matmul -> softmax -> matmul"

    def candidates(self, gm):
        return call_nodes(gm, SDPA)

    def match(self, gm, node: torch.fx.Node) -> Attention:
        a = arguments(node)
        check(not a["is_causal"], "causal attention")
        check(not a["dropout_p"], "attention with dropout")
        check(not a["enable_gqa"], "grouped-query attention")
        mask = a["attn_mask"]
        check(mask is None or (isinstance(mask, torch.fx.Node) and val(mask) is not None
                               and val(mask).dtype.is_floating_point), "a boolean or unknown attention mask")
        q, k, v = a["query"], a["key"], a["value"]
        tokens = [token_operand(view_chain(x), Q_ORDER, what) for x, what in ((q, "Q"), (k, "K"), (v, "V"))]
        check(len({t.heads for t in tokens}) == 1, "Q, K and V have different head counts")
        b, heads, n, c = shape(q)
        channels = heads * shape(v)[3]
        expected = index((b, heads, n, channels // heads)).transpose(1, 2).reshape(b, n, channels)
        check_tail(node, expected, "reassembled into [B, N, C] tokens in head-major channel order")
        scale = a["scale"] if a["scale"] is not None else 1.0 / math.sqrt(c)
        return Attention(node, q, k, v, mask, float(scale))

    def rewrite(self, gm, site: Attention, result: PassResult) -> None:
        emit = NodeBuilder(gm, site.node)
        scores = emit(MATMUL, site.q, emit(aten.transpose.int, site.k, -2, -1))
        scores = emit(aten.mul.Tensor, scores, site.scale)
        if site.mask is not None:
            scores = emit(aten.add.Tensor, scores, site.mask)
        out = emit(MATMUL, emit(aten.softmax.int, scores, -1), site.v, like=site.node)
        site.node.replace_all_uses_with(out)
        gm.graph.erase_node(site.node)
