"""What every attention rule matches first: the softmax frame, constant scales, and head-split operands."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.fx

from ..base import Mismatch, check
from ..ops import ADD, DIVS, MATMUL, MULS, SOFTMAXES, is_call, val
from .views import ViewChain, index, replay, same_layout, shape

aten = torch.ops.aten

# Orders of (B, T, h, c) that give each operand's layout.
Q_ORDER = (0, 2, 1, 3)  # [B, h, T, c]
KT_ORDER = (0, 2, 3, 1)  # [B, h, c, T]


@dataclass
class Frame:
    """``softmax(scale * (A @ B) [+ bias]) @ V`` around one softmax."""

    softmax: torch.fx.Node
    scores: torch.fx.Node  # the matmul A @ B
    out: torch.fx.Node  # the matmul attn @ V
    scale: float
    bias: torch.fx.Node | None


@dataclass
class Tokens:
    """A head split of ``channels`` channels of [B, N, C_total] tokens, starting at ``offset``."""

    source: torch.fx.Node
    offset: int
    channels: int
    heads: int
    exclusive: bool  # nothing but this attention reads ``source`` (through the views)

    @property
    def whole(self) -> bool:
        return self.offset == 0 and self.channels == shape(self.source)[2]


def scalar_factor(node: torch.fx.Node) -> tuple[torch.fx.Node, float] | None:
    """``(t, s)`` when ``node`` is ``t * s`` or ``t / s`` with a constant number ``s``."""
    if not is_call(node, MULS + DIVS):
        return None
    a, b = node.args[0], node.args[1]
    if isinstance(a, torch.fx.Node) and isinstance(b, (int, float)):
        return a, (1.0 / b if node.target in DIVS else float(b))
    if node.target in MULS and isinstance(b, torch.fx.Node) and isinstance(a, (int, float)):
        return b, float(a)
    return None


def strip_scale(node: torch.fx.Node, what: str) -> tuple[torch.fx.Node, float]:
    """Peel constant multiplies off ``node``: ``(t, product of factors)``."""
    scale = 1.0
    while (found := scalar_factor(node)) is not None:
        check(len(node.users) == 1, f"scaled {what} has other users")
        node, factor = found
        scale *= factor
    if is_call(node, MULS + DIVS):
        raise Mismatch(f"{what} is scaled by a tensor, not a constant")
    return node, scale


def frame(softmax: torch.fx.Node) -> Frame:
    """The scores and ``attn @ V`` matmuls around a last-axis softmax, with the scale and bias between."""
    check(softmax.target in SOFTMAXES, "not a softmax")
    if softmax.target is aten._softmax.default:
        check(not softmax.args[2], "half-to-float softmax")
    else:
        check(len(softmax.args) < 3 or softmax.args[2] is None, "softmax with a dtype")
    value = val(softmax)
    rank = value.dim() if value is not None else 0
    check(rank == 4 and softmax.args[1] in (-1, rank - 1), "softmax is not over the last axis of 4-D scores")
    logits, bias = softmax.args[0], None
    if is_call(logits, ADD) and logits.kwargs.get("alpha", 1) == 1:
        first, second = logits.args[0], logits.args[1]
        check(len(logits.users) == 1, "biased scores have other users")
        check(isinstance(first, torch.fx.Node) and isinstance(second, torch.fx.Node), "scores plus a number")
        logits, bias = (first, second) if val(first) is not None and val(first).dim() == 4 else (second, first)
    scores, scale = strip_scale(logits, "attention scores")
    check(is_call(scores, MATMUL), "scores are not a matmul")
    check(len(scores.users) == 1, "raw scores have other users")
    users = list(softmax.users)
    check(len(users) == 1 and users[0].target is MATMUL and users[0].args[0] is softmax,
          "attention probabilities are used by something other than matmul(attn, V)")
    return Frame(softmax, scores, users[0], scale, bias)


def token_operand(chain: ViewChain, order, what: str) -> Tokens:
    """Check that ``chain`` yields a head split of [B, N, C] tokens in ``order``; describe it."""
    value = val(chain.base)
    check(value is not None and value.dim() == 3, f"{what} is not a head split of [B, N, C] tokens")
    dims = shape(chain.base)
    actual = replay(chain.ops, index(dims))
    check(actual.dim() == 4, f"{what} is not a head split of [B, N, C] tokens")
    heads = actual.shape[1]
    head_channels = actual.shape[3] if order == Q_ORDER else actual.shape[2]
    channels = heads * head_channels
    offset = int(actual.reshape(-1)[0]) % dims[2]
    check(offset + channels <= dims[2], f"{what} is not a head split of [B, N, C] tokens")
    expected = index(dims).narrow(2, offset, channels).reshape(dims[0], dims[1], heads, head_channels)
    check(same_layout(actual, expected.permute(*order)),
          f"{what} is not the tokens split into {heads} heads along channels")
    exclusive = all(len(n.users) == 1 for n in chain.nodes)
    return Tokens(chain.base, offset, channels, heads, exclusive)


def check_map_operand(chain: ViewChain, heads: int, transposed: bool, what: str) -> None:
    """Refuse unless ``chain`` splits its [B, C, H, W] map into heads as [B, h, c, HW] (or [B, h, HW, c])."""
    map_shape = shape(chain.base)
    check(map_shape[1] % heads == 0, f"{map_shape[1]} map channels do not split into {heads} heads")
    b, c_all, h, w = map_shape
    expected = index(map_shape).reshape(b, heads, c_all // heads, h * w)
    expected = expected.transpose(-1, -2) if transposed else expected
    layout = "[B, h, HW, c]" if transposed else "[B, h, c, HW]"
    check(same_layout(replay(chain.ops, index(map_shape)), expected),
          f"{what} is not the feature map split into heads along channels, as {layout}")
