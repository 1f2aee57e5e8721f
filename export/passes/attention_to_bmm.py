"""Attention rewritten as batched matmuls that leave the feature map where it is.

Mobile-Former's bridges attend between a feature map ``x`` ([B, C, H, W],
P = H*W pixels, h heads of c = C/h channels) used raw, without K/V or Q
projections, and a handful of tokens (T <= 6). As written, both bridges move
the big tensor: Mobile->Former transposes ``x`` into [B, h, P, c] for
``attn @ V``; Mobile<-Former transposes it into [B, h, P, c] for its queries
and transposes the result back. Every contraction runs over channels or over
tokens, so the map can stay [B*h, c, P] (a free view of NCHW) and the small
operands move instead::

    Mobile->Former (tokens read the map), q = q_proj(z) [B, T, C]:
        s = (s_q q)_h @ x_h            [B*h, T, P]   no copy of x
        a = softmax(s, over P)
        out^T = x_h @ a^T              [B*h, c, T]   a^T is T*P, not C*P
        z' = out^T as [B, T, C]        a tiny transpose

    Mobile<-Former (the map reads the tokens), k, v = proj(z) [B, T, C]:
        s = (s_q k)_h @ x_h            [B*h, T, P]   scores[b,t,p] = sum_c k[b,t,c] x[b,c,p]
        a = softmax(s, over T)         the tiny axis: ``mobexport::token_softmax``, lowered per target
                                       (ONNX: reductions over T; XNNPACK: transpose, last-axis softmax)
        x' = x + v_h^T @ a             [B*h, c, P] is NCHW; the residual is added on [B, C, P]

Token self-attention (the Former, DeiT, CMT: Q, K, V head splits of [B, N, C]
tokens, optionally a constant scale on Q or the scores and an additive bias)
becomes ``bmm -> softmax -> bmm`` on [B*h, N, c] operands: the 4-D matmuls it
replaces decompose into broadcasting ``expand`` copies that ExecuTorch's
XNNPACK delegate does not take, each of which split the delegated graph.

The attention scale ``s_q`` is folded into the linear that makes q (or k) when
nothing else reads that linear; otherwise it stays one multiply on the
tokens. Afterwards every subgraph that only reads constants is evaluated once
(the learned tokens entering the first block: their q projection and gate),
and parameters nothing reads any more are dropped.

Matching is semantic: each attention operand is traced back through view ops
(flatten, unflatten, transpose, permute, view, reshape, unbind) to its source,
and the chain is replayed on an index tensor to check that the operand *is*
the expected head split of that source (channel ``i*c + j`` is head ``i``'s
channel ``j``). It does not apply when the softmax is not over the last axis
of ``matmul(A, B)`` (scaled by a constant, plus a bias, or neither), the
probabilities feed anything but ``matmul(attn, V)``, an operand is not the
head split it must be (e.g. K and V read different maps, channels are not
split head-major), an additive bias needs a batch larger than one, or the
output is not reassembled into tokens / the map in the matching channel
order. Each refusal is reported with its reason.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import torch
import torch.fx

from mobexport.kernels import token_softmax

from .base import GraphPass, Mismatch, PassResult, add_constant, attr_value, check, finalize
from .registry import register_pass

aten = torch.ops.aten

MATMUL = aten.matmul.default
SOFTMAXES = (aten.softmax.int, aten._softmax.default)
LINEAR = aten.linear.default
UNBIND = aten.unbind.int
VIEW_OPS = (
    aten.flatten.using_ints, aten.unflatten.int, aten.transpose.int, aten.permute.default,
    aten.view.default, aten.reshape.default, aten._unsafe_view.default, aten.reshape_as.default,
    aten.view_as.default, aten.unsqueeze.default, aten.squeeze.dim, aten.select.int,
)
MULS = (aten.mul.Tensor, aten.mul.Scalar)
DIVS = (aten.div.Tensor, aten.div.Scalar)

# Ops whose result may be precomputed when every tensor input is a constant.
FOLDABLE = VIEW_OPS + MULS + DIVS + (
    LINEAR, aten.repeat.default, aten.add.Tensor, aten.sub.Tensor, aten.hardsigmoid.default,
    aten.relu.default, aten.sigmoid.default, aten.clone.default, aten.slice.Tensor, aten.bmm.default,
    aten.softmax.int, aten.layer_norm.default, aten.gelu.default, aten.mm.default, aten.addmm.default,
    aten.t.default, aten.expand.default,
)
# Constants larger than this stay computed at run time (a repeat could make a huge one).
MAX_FOLDED_ELEMENTS = 1 << 20


# --------------------------------------------------------------------------- #
# Shapes and view chains
# --------------------------------------------------------------------------- #


def _val(node) -> torch.Tensor | None:
    value = node.meta.get("val") if isinstance(node, torch.fx.Node) else None
    return value if isinstance(value, torch.Tensor) else None


def _hint(size) -> int:
    """An int for a size that may be symbolic (its example value)."""
    if isinstance(size, int):
        return size
    hint = getattr(getattr(size, "node", None), "hint", None)
    return int(hint) if hint is not None else int(size)


def _shape(node) -> tuple[int, ...]:
    value = _val(node)
    check(value is not None, f"{getattr(node, 'name', node)} has no shape information")
    return tuple(_hint(s) for s in value.shape)


def _is_unbind_item(node) -> bool:
    return (isinstance(node, torch.fx.Node) and node.op == "call_function" and node.target is operator.getitem
            and isinstance(node.args[0], torch.fx.Node) and node.args[0].target is UNBIND)


@dataclass
class ViewChain:
    """``operand = views(base)``: the source tensor and the view ops applied to it, in order."""

    base: torch.fx.Node
    ops: list[torch.fx.Node]

    @property
    def nodes(self) -> list[torch.fx.Node]:
        return [self.base, *self.ops]


def view_chain(node: torch.fx.Node) -> ViewChain:
    """Walk back from ``node`` through view ops (``unbind(t)[i]`` counts as one) to their source."""
    ops = []
    while isinstance(node, torch.fx.Node) and node.op == "call_function":
        if node.target in VIEW_OPS:
            ops.append(node)
            node = node.args[0]
        elif _is_unbind_item(node):
            ops.append(node)
            node = node.args[0].args[0]
        else:
            break
    return ViewChain(node, ops[::-1])


def _concrete(arg):
    """Arguments for a replay: nodes become example tensors or ints, symbolic sizes their hints."""
    if isinstance(arg, torch.fx.Node):
        value = arg.meta.get("val")
        if isinstance(value, torch.Tensor):
            return torch.empty(tuple(_hint(s) for s in value.shape))
        return _hint(value)
    if isinstance(arg, (list, tuple)):
        return type(arg)(_concrete(a) for a in arg)
    if isinstance(arg, torch.SymInt):
        return _hint(arg)
    return arg


def replay(ops: list[torch.fx.Node], index: torch.Tensor) -> torch.Tensor:
    """Apply the view ops ``ops`` to ``index`` in place of their first argument."""
    for op in ops:
        if _is_unbind_item(op):
            unbind = op.args[0]
            dim = unbind.args[1] if len(unbind.args) > 1 else unbind.kwargs.get("dim", 0)
            index = index.select(dim, op.args[1])
        else:
            index = op.target(index, *_concrete(op.args[1:]), **_concrete(op.kwargs))
    return index


def _index(shape: tuple[int, ...]) -> torch.Tensor:
    return torch.arange(math.prod(shape)).reshape(shape)


def same_layout(actual: torch.Tensor, expected: torch.Tensor) -> bool:
    return tuple(actual.shape) == tuple(expected.shape) and torch.equal(actual, expected)


def forward_chain(node: torch.fx.Node) -> list[torch.fx.Node]:
    """View ops that consume ``node`` one after another, each the only user of the one before."""
    chain = []
    while len(node.users) == 1:
        user = next(iter(node.users))
        if not (user.op == "call_function" and user.target in VIEW_OPS and user.args[0] is node):
            break
        chain.append(user)
        node = user
    return chain


def map_view(chain: ViewChain) -> ViewChain | None:
    """The chain re-rooted at the feature map it reads, if the operand has that map's pixels as one axis.

    The map is the last 4-D tensor along the chain, before the operand, whose
    H*W is an axis of the operand (a channel shuffle, or a reshape back from
    [B, C, H*W], may come before it).
    """
    nodes = chain.nodes
    operand = _val(nodes[-1])
    if operand is None or operand.dim() != 4:
        return None
    for i in range(len(nodes) - 2, -1, -1):
        value = _val(nodes[i])
        if value is not None and value.dim() == 4:
            pixels = _hint(value.shape[2]) * _hint(value.shape[3])
            if pixels in (_hint(operand.shape[2]), _hint(operand.shape[3])):
                return ViewChain(nodes[i], nodes[i + 1:])
    return None


# --------------------------------------------------------------------------- #
# Matching
# --------------------------------------------------------------------------- #

# Orders of (B, T, h, c) that give each operand's layout.
Q_ORDER = (0, 2, 1, 3)  # [B, h, T, c]
KT_ORDER = (0, 2, 3, 1)  # [B, h, c, T]


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
        return self.offset == 0 and self.channels == _shape(self.source)[2]


@dataclass
class Site:
    kind: str  # "mobile_to_former" | "former_to_mobile" | "self_attention"
    softmax: torch.fx.Node
    scale: float
    heads: int
    result: torch.fx.Node  # the node whose uses the rewrite replaces
    q: Tokens | None = None
    k: Tokens | None = None
    v: Tokens | None = None
    feature_map: torch.fx.Node | None = None  # [B, C, H, W]
    bias: torch.fx.Node | None = None


def _scalar_factor(node: torch.fx.Node) -> tuple[torch.fx.Node, float] | None:
    """``(t, s)`` when ``node`` is ``t * s`` or ``t / s`` with a constant number ``s``."""
    if node.op != "call_function" or node.target not in MULS + DIVS:
        return None
    a, b = node.args[0], node.args[1]
    if isinstance(a, torch.fx.Node) and isinstance(b, (int, float)):
        return a, (1.0 / b if node.target in DIVS else float(b))
    if node.target in MULS and isinstance(b, torch.fx.Node) and isinstance(a, (int, float)):
        return b, float(a)
    return None


def _strip_scale(node: torch.fx.Node, what: str) -> tuple[torch.fx.Node, float]:
    """Peel constant multiplies off ``node``: ``(t, product of factors)``."""
    scale = 1.0
    while (found := _scalar_factor(node)) is not None:
        check(len(node.users) == 1, f"scaled {what} has other users")
        node, factor = found
        scale *= factor
    if node.op == "call_function" and node.target in MULS + DIVS:
        raise Mismatch(f"{what} is scaled by a tensor, not a constant")
    return node, scale


def _token_operand(chain: ViewChain, order, what: str) -> Tokens:
    """Check that ``chain`` yields a head split of [B, N, C] tokens in ``order``; describe it."""
    value = _val(chain.base)
    check(value is not None and value.dim() == 3, f"{what} is not a head split of [B, N, C] tokens")
    shape = _shape(chain.base)
    actual = replay(chain.ops, _index(shape))
    check(actual.dim() == 4, f"{what} is not a head split of [B, N, C] tokens")
    heads = actual.shape[1]
    head_channels = actual.shape[3] if order == Q_ORDER else actual.shape[2]
    channels = heads * head_channels
    offset = int(actual.reshape(-1)[0]) % shape[2]
    check(offset + channels <= shape[2], f"{what} is not a head split of [B, N, C] tokens")
    expected = _index(shape).narrow(2, offset, channels).reshape(shape[0], shape[1], heads, head_channels)
    check(same_layout(actual, expected.permute(*order)),
          f"{what} is not the tokens split into {heads} heads along channels")
    exclusive = all(len(n.users) == 1 for n in chain.nodes)
    return Tokens(chain.base, offset, channels, heads, exclusive)


def _probabilities(softmax: torch.fx.Node) -> tuple[torch.fx.Node, torch.fx.Node, float, torch.fx.Node | None]:
    """``(scores matmul, attn @ V matmul, scale, bias)`` around a last-axis softmax."""
    check(softmax.target in SOFTMAXES, "not a softmax")
    if softmax.target is aten._softmax.default:
        check(not softmax.args[2], "half-to-float softmax")
    else:
        check(len(softmax.args) < 3 or softmax.args[2] is None, "softmax with a dtype")
    value = _val(softmax)
    rank = value.dim() if value is not None else 0
    check(rank == 4 and softmax.args[1] in (-1, rank - 1), "softmax is not over the last axis of 4-D scores")
    logits, bias = softmax.args[0], None
    if logits.op == "call_function" and logits.target is aten.add.Tensor and logits.kwargs.get("alpha", 1) == 1:
        first, second = logits.args[0], logits.args[1]
        check(len(logits.users) == 1, "biased scores have other users")
        check(isinstance(first, torch.fx.Node) and isinstance(second, torch.fx.Node), "scores plus a number")
        logits, bias = (first, second) if _val(first) is not None and _val(first).dim() == 4 else (second, first)
    scores, scale = _strip_scale(logits, "attention scores")
    check(scores.op == "call_function" and scores.target is MATMUL, "scores are not a matmul")
    check(len(scores.users) == 1, "raw scores have other users")
    users = list(softmax.users)
    check(len(users) == 1 and users[0].target is MATMUL and users[0].args[0] is softmax,
          "attention probabilities are used by something other than matmul(attn, V)")
    return scores, users[0], scale, bias


def match(softmax: torch.fx.Node) -> Site:
    """The attention around ``softmax``, or :class:`Mismatch` saying why not."""
    scores, out, scale, bias = _probabilities(softmax)
    chain_a, chain_b, chain_v = view_chain(scores.args[0]), view_chain(scores.args[1]), view_chain(out.args[1])
    map_b, map_a = map_view(chain_b), map_view(chain_a)
    if map_b is None and map_a is None:
        return _match_self_attention(softmax, scale, bias, scores, out)
    try:
        check(bias is None, "a bias on attention scores against a feature map")
        if map_b is not None:
            return _match_mobile_to_former(softmax, scale, scores, out, chain_a, map_b, map_view(chain_v) or chain_v)
        return _match_former_to_mobile(softmax, scale, scores, out, map_a, chain_b, chain_v)
    except Mismatch as as_bridge:
        # A [B, N, h, c] head split can pass for a map (its h*c is an axis of the operand); try tokens.
        try:
            return _match_self_attention(softmax, scale, bias, scores, out)
        except Mismatch:
            raise as_bridge from None


def _map_split(map_shape, heads, transposed: bool) -> torch.Tensor:
    b, c_all, h, w = map_shape
    index = _index(map_shape).reshape(b, heads, c_all // heads, h * w)
    return index.transpose(-1, -2) if transposed else index


def _check_map_operand(chain: ViewChain, heads: int, transposed: bool, what: str) -> None:
    map_shape = _shape(chain.base)
    check(map_shape[1] % heads == 0, f"{map_shape[1]} map channels do not split into {heads} heads")
    layout = "[B, h, HW, c]" if transposed else "[B, h, c, HW]"
    check(same_layout(replay(chain.ops, _index(map_shape)), _map_split(map_shape, heads, transposed)),
          f"{what} is not the feature map split into heads along channels, as {layout}")


def _check_tail(out: torch.fx.Node, expected: torch.Tensor, what: str) -> torch.fx.Node:
    tail = forward_chain(out)
    check(tail and same_layout(replay(tail, _index(_shape(out))), expected), f"the attention output is not {what}")
    return tail[-1]


def _match_mobile_to_former(softmax, scale, scores, out, chain_q, chain_k, chain_v) -> Site:
    x = chain_k.base
    heads = _shape(scores.args[1])[1]
    check(chain_v.base is x, "V is not the feature map K is read from")
    _check_map_operand(chain_k, heads, False, "K")
    _check_map_operand(chain_v, heads, True, "V")
    q = _token_operand(chain_q, Q_ORDER, "Q")
    check(q.channels == _shape(x)[1], "Q and the feature map have different channel counts")
    b, t = _shape(q.source)[:2]
    expected = _index((b, heads, t, q.channels // heads)).transpose(1, 2).reshape(b, t, q.channels)
    result = _check_tail(out, expected, "reassembled into [B, T, C] tokens in head-major channel order")
    return Site("mobile_to_former", softmax, scale, heads, result, q=q, feature_map=x)


def _match_former_to_mobile(softmax, scale, scores, out, chain_q, chain_k, chain_v) -> Site:
    x = chain_q.base
    heads = _shape(scores.args[0])[1]
    _check_map_operand(chain_q, heads, True, "Q")
    k = _token_operand(chain_k, KT_ORDER, "K")
    v = _token_operand(chain_v, Q_ORDER, "V")
    map_shape = _shape(x)
    check(k.channels == map_shape[1] and v.channels == map_shape[1], "K/V and the feature map have different channel counts")
    b, c_all, hh, ww = map_shape
    expected = _index((b, heads, hh * ww, c_all // heads)).transpose(-1, -2).reshape(map_shape)
    result = _check_tail(out, expected, "reassembled into the [B, C, H, W] map in head-major channel order")
    return Site("former_to_mobile", softmax, scale, heads, result, k=k, v=v, feature_map=x)


def _match_self_attention(softmax, scale, bias, scores, out) -> Site:
    q_node, q_scale = _strip_scale(scores.args[0], "Q")
    k_node, k_scale = _strip_scale(scores.args[1], "K")
    q = _token_operand(view_chain(q_node), Q_ORDER, "Q")
    k = _token_operand(view_chain(k_node), KT_ORDER, "K")
    v = _token_operand(view_chain(out.args[1]), Q_ORDER, "V")
    check(q.heads == k.heads == v.heads, "Q, K and V have different head counts")
    check(q.channels == k.channels, "Q and K have different widths")
    b, n = _shape(q.source)[:2]
    if bias is not None:
        bias_shape = _shape(bias)
        check(b == 1 and len(bias_shape) in (2, 3, 4) and (len(bias_shape) < 4 or bias_shape[0] == 1)
              and (len(bias_shape) < 3 or bias_shape[-3] in (1, q.heads)),
              "the score bias does not broadcast over a batch of one as [h, N, N']")
    heads = q.heads
    expected = _index((b, heads, n, v.channels // heads)).transpose(1, 2).reshape(b, n, v.channels)
    result = _check_tail(out, expected, "reassembled into [B, N, C] tokens in head-major channel order")
    site = Site("self_attention", softmax, scale * q_scale * k_scale, heads, result, q=q, k=k, v=v, bias=bias)
    return site


# --------------------------------------------------------------------------- #
# Rewriting
# --------------------------------------------------------------------------- #


class _Emitter:
    """Inserts call_function nodes before ``anchor``, with their fake ``meta["val"]`` (later matches read shapes)."""

    def __init__(self, gm: torch.fx.GraphModule, anchor: torch.fx.Node):
        self.gm, self.anchor = gm, anchor

    def __call__(self, target, *args) -> torch.fx.Node:
        with self.gm.graph.inserting_before(self.anchor):
            node = self.gm.graph.call_function(target, args)
        node.meta["val"] = fake_value(self.gm, node)
        return node


def fake_value(gm: torch.fx.GraphModule, node: torch.fx.Node):
    """Run ``node`` on its inputs' fake values (constants converted) to get its own."""
    from torch._guards import detect_fake_mode

    vals = [n.meta.get("val") for n in node.all_input_nodes]
    mode = detect_fake_mode([v for v in vals if isinstance(v, torch.Tensor)])
    if mode is None:
        return None

    def as_fake(n: torch.fx.Node):
        value = n.meta.get("val")
        if value is None and n.op == "get_attr":
            value = mode.from_tensor(attr_value(gm, n))
        return value

    with mode:
        return node.target(*torch.fx.node.map_arg(node.args, as_fake), **torch.fx.node.map_arg(node.kwargs, as_fake))


def _fold_scale_into_linear(gm: torch.fx.GraphModule, tokens: Tokens, scale: float) -> bool:
    """Scale the weights of the linear that makes ``tokens``, if that changes nothing else."""
    linear = tokens.source
    if not (tokens.exclusive and tokens.whole and linear.op == "call_function" and linear.target is LINEAR):
        return False
    weight = attr_value(gm, linear.args[1])
    bias_node = linear.args[2] if len(linear.args) > 2 else None
    bias = attr_value(gm, bias_node) if bias_node is not None else None
    if weight is None or (bias_node is not None and bias is None):
        return False
    args = [linear.args[0], add_constant(gm, linear, "attn_scaled_weight", (weight.double() * scale).float())]
    if bias is not None:
        args.append(add_constant(gm, linear, "attn_scaled_bias", (bias.double() * scale).float()))
    linear.args = tuple(args)
    return True


def token_heads(gm, emit: _Emitter, tokens: Tokens, order, scale: float = 1.0) -> torch.fx.Node:
    """[B, N, C] tokens -> [B*h, N, c] (``Q_ORDER``) or [B*h, c, N] (``KT_ORDER``), times ``scale``."""
    source = tokens.source
    if not tokens.whole:
        source = emit(aten.slice.Tensor, source, 2, tokens.offset, tokens.offset + tokens.channels)
    if scale != 1.0 and not _fold_scale_into_linear(gm, tokens, scale):
        source = emit(aten.mul.Tensor, source, scale)
    split = emit(aten.unflatten.int, source, 2, [tokens.heads, tokens.channels // tokens.heads])  # B, N, h, c
    return emit(aten.flatten.using_ints, emit(aten.permute.default, split, list(order)), 0, 1)


def map_heads(emit: _Emitter, x: torch.fx.Node, heads: int) -> torch.fx.Node:
    """[B, C, H, W] -> [B*h, c, HW]: a view, nothing moves."""
    channels = _shape(x)[1]
    flat = emit(aten.flatten.using_ints, x, 2)
    return emit(aten.flatten.using_ints, emit(aten.unflatten.int, flat, 1, [heads, channels // heads]), 0, 1)


def merge_heads(emit: _Emitter, t: torch.fx.Node, heads: int) -> torch.fx.Node:
    """[B*h, a, b] -> [B, h*a, b]."""
    return emit(aten.flatten.using_ints, emit(aten.unflatten.int, t, 0, [-1, heads]), 1, 2)


def softmax_over_tokens(emit: _Emitter, scores: torch.fx.Node) -> torch.fx.Node:
    """Softmax over dim 1 of [B*h, T, P]: ``mobexport::token_softmax``, lowered per target.

    No one ATen spelling is fastest everywhere (ONNX Runtime streams reductions
    over P; XNNPACK only has a last-axis softmax), see :mod:`mobexport.kernels.token_softmax`.
    """
    return emit(token_softmax.OP, scores)


def rewrite_mobile_to_former(gm: torch.fx.GraphModule, site: Site) -> None:
    emit = _Emitter(gm, site.result)
    q_heads = token_heads(gm, emit, site.q, Q_ORDER, site.scale)  # B*h, T, c
    x_heads = map_heads(emit, site.feature_map, site.heads)  # B*h, c, P
    attn = emit(aten.softmax.int, emit(aten.bmm.default, q_heads, x_heads), -1)  # B*h, T, P
    out_t = emit(aten.bmm.default, x_heads, emit(aten.transpose.int, attn, 1, 2))  # B*h, c, T
    site.result.replace_all_uses_with(emit(aten.transpose.int, merge_heads(emit, out_t, site.heads), 1, 2))


def rewrite_former_to_mobile(gm: torch.fx.GraphModule, site: Site) -> bool:
    """Rewrite; returns whether the residual ``x + .`` moved onto [B, C, P] with it."""
    emit = _Emitter(gm, site.result)
    x = site.feature_map
    k_heads = token_heads(gm, emit, site.k, Q_ORDER, site.scale)  # B*h, T, c
    v_heads_t = token_heads(gm, emit, site.v, KT_ORDER)  # B*h, c, T
    x_heads = map_heads(emit, x, site.heads)  # B*h, c, P
    attn = softmax_over_tokens(emit, emit(aten.bmm.default, k_heads, x_heads))  # B*h, T, P
    out = merge_heads(emit, emit(aten.bmm.default, v_heads_t, attn), site.heads)  # B, C, P
    residual = _residual_add(site)
    if residual is not None:
        # On XNNPACK the sum then stays in the layout the next bridge reads (no NHWC round trip).
        emit = _Emitter(gm, residual)
        summed = emit(aten.add.Tensor, emit(aten.flatten.using_ints, x, 2), out)
        residual.replace_all_uses_with(emit(aten.reshape_as.default, summed, x))
        return True
    site.result.replace_all_uses_with(emit(aten.reshape_as.default, out, x))
    return False


def _residual_add(site: Site) -> torch.fx.Node | None:
    """The ``x + attention(x)`` node after a Mobile<-Former site, if that is its only use."""
    users = list(site.result.users)
    if len(users) != 1:
        return None
    add = users[0]
    if add.target is not aten.add.Tensor or len(add.args) != 2 or add.kwargs.get("alpha", 1) != 1:
        return None
    return add if set(add.args) == {site.feature_map, site.result} else None


def rewrite_self_attention(gm: torch.fx.GraphModule, site: Site) -> None:
    emit = _Emitter(gm, site.result)
    q_heads = token_heads(gm, emit, site.q, Q_ORDER, site.scale)  # B*h, N, c
    k_heads_t = token_heads(gm, emit, site.k, KT_ORDER)  # B*h, c, N'
    v_heads = token_heads(gm, emit, site.v, Q_ORDER)  # B*h, N', c
    scores = emit(aten.bmm.default, q_heads, k_heads_t)  # B*h, N, N'
    if site.bias is not None:
        bias = site.bias
        rank = _val(bias).dim()
        if rank == 4:
            bias = emit(aten.flatten.using_ints, bias, 0, 1)
        elif rank == 2:
            bias = emit(aten.unsqueeze.default, bias, 0)
        scores = emit(aten.add.Tensor, scores, bias)
    out = emit(aten.bmm.default, emit(aten.softmax.int, scores, -1), v_heads)  # B*h, N, c
    split = emit(aten.unflatten.int, out, 0, [-1, site.heads])  # B, h, N, c
    site.result.replace_all_uses_with(emit(aten.flatten.using_ints, emit(aten.transpose.int, split, 1, 2), 2))


# --------------------------------------------------------------------------- #
# Constants
# --------------------------------------------------------------------------- #


def fold_constants(gm: torch.fx.GraphModule) -> int:
    """Evaluate nodes whose tensor inputs are all constants; returns how many were replaced."""
    constant: dict[torch.fx.Node, torch.Tensor] = {}
    folded = 0
    for node in list(gm.graph.nodes):
        if node.op == "get_attr":
            value = attr_value(gm, node)
            if value is not None:
                constant[node] = value
            continue
        if node.op != "call_function" or node.target not in FOLDABLE:
            continue
        inputs = node.all_input_nodes
        if not inputs or not all(n in constant for n in inputs) or any(map(_symbolic, _flat(node.args))):
            continue
        with torch.no_grad():
            value = node.target(*torch.fx.node.map_arg(node.args, constant.__getitem__),
                                **torch.fx.node.map_arg(node.kwargs, constant.__getitem__))
        if not isinstance(value, torch.Tensor) or value.numel() > MAX_FOLDED_ELEMENTS:
            continue
        replacement = add_constant(gm, node, "folded", value.contiguous())
        replacement.meta["val"] = node.meta.get("val")
        node.replace_all_uses_with(replacement)
        constant[replacement] = value
        folded += 1
    return folded


def drop_unused_constants(gm: torch.fx.GraphModule) -> int:
    """Delete parameters and buffers no ``get_attr`` node reads any more (folded away)."""
    used = {str(n.target) for n in gm.graph.nodes if n.op == "get_attr"}
    names = [name for name, _ in gm.named_parameters(remove_duplicate=False)]
    names += [name for name, _ in gm.named_buffers(remove_duplicate=False)]
    dropped = 0
    for name in dict.fromkeys(names):
        if name in used:
            continue
        owner, _, leaf = name.rpartition(".")
        module = gm.get_submodule(owner) if owner else gm
        for table in (module._parameters, module._buffers):
            if leaf in table:
                del table[leaf]
                dropped += 1
    return dropped


def _symbolic(arg) -> bool:
    return isinstance(arg, (torch.SymInt, torch.SymFloat))


def _flat(args):
    for a in args:
        if isinstance(a, (list, tuple)):
            yield from _flat(a)
        else:
            yield a


# --------------------------------------------------------------------------- #
# The pass
# --------------------------------------------------------------------------- #

REWRITES = {
    "mobile_to_former": rewrite_mobile_to_former,
    "former_to_mobile": rewrite_former_to_mobile,
    "self_attention": rewrite_self_attention,
}


@register_pass
class ProjectionFreeAttentionPass(GraphPass):
    id = "projection_free_attention"
    after = ("fold_batchnorm", "fuse_dwconv_ffn", "fold_dynamic_relu")
    description = "attention as bmm without moving the feature map; scale and constant projections folded"

    def run(self, gm: torch.fx.GraphModule) -> PassResult:
        result = PassResult(self.id)
        counts = dict.fromkeys(REWRITES, 0)
        residuals = 0
        for softmax in [n for n in gm.graph.nodes if n.op == "call_function" and n.target in SOFTMAXES]:
            try:
                site = match(softmax)
            except Mismatch as why:
                result.skip(softmax, str(why))
                continue
            moved = REWRITES[site.kind](gm, site)
            residuals += bool(moved)
            counts[site.kind] += 1
            result.rewrites += 1
            gm.graph.eliminate_dead_code()
        if result.changed:
            folded = fold_constants(gm)
            finalize(gm)
            result.details.update(counts, residual_adds_on_bcp=residuals, constants_folded=folded,
                                  unused_constants_dropped=drop_unused_constants(gm))
        return result
