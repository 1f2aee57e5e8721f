"""Attention rewritten as batched matmuls over heads, leaving a feature map where it is.

Three forms, one rule each (``attention/``), all ending as
``bmm -> softmax -> bmm`` on [B*h, ., .] operands:

* **Mobile->Former** (``attention/mobile_to_former.py``): tokens attend to a
  raw [B, C, H, W] feature map (no K/V projection). As written the map is
  transposed into [B, h, P, c] for ``attn @ V``; rewritten, it stays
  [B*h, c, P] (a free view of NCHW) and the small operands move instead.
* **Mobile<-Former** (``attention/former_to_mobile.py``): the raw map is the
  query; as written it is transposed in and the result transposed back.
  Rewritten, the softmax runs over the tiny token axis
  (``mobexport::token_softmax``) and the residual add happens on [B, C, P].
* **Token self-attention** (``attention/self_attention.py``): the Former,
  DeiT, CMT, with or without Q/K/V projections of their own.

Every contraction runs over channels or over tokens, so the map never needs
to move. The attention scale ``s_q`` is folded into the linear that makes q
(or k) when nothing else reads that linear; otherwise it stays one multiply
on the tokens. Subgraphs left reading only constants (the learned tokens'
projections in Mobile-Former's first block) are ``fold_constants``' job,
which runs after this pass.

Matching is semantic (``attention/views.py``): each operand is traced back
through view ops to its source and the chain replayed on an index tensor, so
any spelling of the head split matches. Refused, with the reason: a softmax
not over the last axis of ``matmul(A, B)`` (scaled by a constant, plus a
bias, or neither), probabilities feeding anything but ``matmul(attn, V)``,
an operand that is not the head split it must be (K and V from different
maps, channels not split head-major), an additive bias that needs a batch
larger than one, or an output not reassembled in the matching channel order.

The id was ``projection_free_attention`` until the rules were split out; the
registry keeps that name as an alias.
"""

from __future__ import annotations

import torch
import torch.fx

from .attention.former_to_mobile import FormerToMobile
from .attention.mobile_to_former import MobileToFormer
from .attention.operands import frame
from .attention.rule import AttentionRule
from .attention.self_attention import SelfAttention
from .base import GraphPass, Mismatch, PassResult, call_nodes
from .ops import SOFTMAXES

# Tried in order; the first that claims a site and matches it rewrites it. Self-attention
# claims every site, so a bridge that fails is retried as token attention.
RULES: tuple[AttentionRule, ...] = (MobileToFormer(), FormerToMobile(), SelfAttention())


def match_rule(softmax: torch.fx.Node) -> tuple[AttentionRule, object]:
    """The rule that matches the attention around ``softmax`` and its site; else the first rule's reason."""
    around = frame(softmax)
    first_refusal: Mismatch | None = None
    for rule in RULES:
        if not rule.claims(around):
            continue
        try:
            return rule, rule.match(around)
        except Mismatch as why:
            first_refusal = first_refusal or why
    raise first_refusal


class AttentionToBmmPass(GraphPass):
    id = "attention_to_bmm"
    after = ("einsum_to_matmul", "sdpa_to_matmul", "fold_batchnorm", "fuse_dwconv_ffn", "fold_dynamic_relu")
    description = "attention as bmm over heads without moving the feature map (Mobile<->Former, token attention)"

    def start(self, gm) -> dict:
        return {**{rule.name: 0 for rule in RULES}, "residual_adds_on_bcp": 0}

    def candidates(self, gm):
        return call_nodes(gm, SOFTMAXES)

    def match(self, gm, softmax: torch.fx.Node):
        return match_rule(softmax)

    def rewrite(self, gm, matched, result: PassResult) -> None:
        rule, site = matched
        for key, count in rule.rewrite(gm, site).items():
            result.details[key] += count
        result.details[rule.name] += 1
        gm.graph.eliminate_dead_code()

    def finish(self, gm, result: PassResult) -> None:
        if not result.changed:
            result.details.clear()  # as before the split: counts only when something was rewritten
