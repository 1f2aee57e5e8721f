"""Fold Dynamic ReLU's constant steps into its hyper-function; compute its max per channel.

Mobile-Former's DY-ReLU makes two slopes per channel from token 0 ``t``
(``r = ReLU(W0 t + b0)``, ``z = W r + b`` with ``2C`` outputs, ``z1 = z[:C]``,
``z2 = z[C:]``) and takes the larger product::

    h  = hsigmoid(z) = clamp(z/6 + 1/2, 0, 1)
    a1 = 2 (h1 - 1/2) + 1          a2 = 2 (h2 - 1/2)          # [B, C, 1, 1]
    y  = max(a1 x, a2 x)                                       # x: [B, C, H, W]

**Fold.** For ``k > 0``, ``k clamp(u, lo, hi) + m = clamp(k u + m, k lo + m,
k hi + m)`` (for ``k < 0`` the bounds swap), so the scalar steps move inside
the clamp and from there into the Linear's rows::

    a1 = 2 h1     = clamp(z1/3 + 1, 0, 2)  = clamp(W1' r + b1', 0, 2)    W1' = W[:C]/3, b1' = b[:C]/3 + 1
    a2 = 2 h2 - 1 = clamp(z2/3, -1, 1)     = clamp(W2' r + b2', -1, 1)   W2' = W[C:]/3, b2' = b[C:]/3

The chunk becomes two Linear layers (one per half, each a row slice of ``W``)
and the hardsigmoid, two subtractions, two multiplications and an addition
per DY-ReLU become two clamps. In general the pass composes any chain of
scalar add/sub/mul/div, at most one clamp (hardsigmoid, hardtanh, clamp,
relu), chunk/split/slice of the Linear's feature dimension and unsqueezes.

**Max.** With ``p = max(a1, a2)`` and ``n = min(a1, a2)``, computed on the
``[B, C, 1, 1]`` coefficients: for ``x >= 0`` the larger product is ``p x``,
for ``x < 0`` it is ``n x`` (multiplying by a negative number flips the
order), so::

    max(a1 x, a2 x) = x * where(x >= 0, p, n)          # form "where"
                    = n x + (p - n) relu(x)            # form "relu"
                    = max(a1 x, a2 x)                  # form "maximum": fold only

All three make three passes over the full map with standard ops; which is
fastest is a runtime question, measured by ``benchmarks/dynamic_relu_forms.py``
(``docs/passes.md``). :data:`DEFAULT_FORM` is the winner there: "maximum"
(ONNX Runtime and XNNPACK run ``where`` as a generic select, XNNPACK not at
all: it leaves the delegate); the other forms stay available as
``FoldDynamicReluPass(form=...)``. Touching the map once needs a fused kernel.

**Static.** When the slopes do not depend on the network input (the
hyper-function reads a constant), they are evaluated now and the op becomes a
per-channel PReLU: ``y = p * prelu(x, n / p)`` where every ``p > 0``. When the
only consumer is a conv, ``p`` goes into that conv's input channels instead
(scaling an input channel commutes with its zero padding). With a channel
whose ``p <= 0`` it becomes ``n x + (p - n) relu(x)`` with constant ``p, n``.

**Refuses** a ``max`` whose products are used elsewhere, whose coefficients
are not one value per (sample, channel), and folds nothing (but still
rewrites the max) when a coefficient's path to a constant-weight Linear holds
anything else: another nonlinearity, a second clamp, a tensor-valued step,
a slice of another dimension, or a node used elsewhere.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from numbers import Number

import torch
import torch.fx

from .base import GraphPass, Mismatch, PassResult, add_constant, attr_value, check, finalize
from .fuse_dwconv_ffn import conv_arguments
from .registry import register_pass

aten = torch.ops.aten

MAXIMUM = aten.maximum.default
MUL = aten.mul.Tensor
LINEAR = aten.linear.default
CONVS = (aten.conv2d.default, aten.conv2d.padding)

# v = m * u + c for one scalar step: target -> (m, c) from the scalar operand s
_ADDS = (aten.add.Tensor, aten.add.Scalar)
_SUBS = (aten.sub.Tensor, aten.sub.Scalar)
_MULS = (aten.mul.Tensor, aten.mul.Scalar)
_DIVS = (aten.div.Tensor, aten.div.Scalar)
_SPLITS = (aten.chunk.default, aten.split.Tensor, aten.split_with_sizes.default)

FORMS = ("where", "relu", "maximum")
DEFAULT_FORM = "maximum"  # measured fastest on ONNX Runtime and XNNPACK: docs/passes.md


@dataclass
class Coefficient:
    """A slope as ``clamp(scale * (W r + b)[start:stop] + shift, lo, hi)``, then ``unsqueeze(dims)``."""

    linear: torch.fx.Node
    start: int
    stop: int
    scale: float = 1.0
    shift: float = 0.0
    bounds: tuple[float, float] | None = None
    unsqueeze: list[int] = field(default_factory=list)
    steps: int = 0  # scalar steps and slices that a fold removes

    @property
    def folded_already(self) -> bool:
        return self.steps == 0


def _scalar_step(node: torch.fx.Node) -> tuple[torch.fx.Node, float, float] | None:
    """``(u, m, c)`` when ``node`` computes ``m * u + c`` with Python scalars, else ``None``."""
    if len(node.args) != 2 or node.kwargs.get("alpha", 1) != 1:
        return None
    a, b = node.args
    if node.target in _ADDS + _MULS:
        u, s = (a, b) if isinstance(b, Number) else (b, a)
        if not (isinstance(u, torch.fx.Node) and isinstance(s, Number)):
            return None
        return (u, 1.0, float(s)) if node.target in _ADDS else (u, float(s), 0.0)
    if node.target in _SUBS and isinstance(a, torch.fx.Node) and isinstance(b, Number):
        return a, 1.0, -float(b)
    if node.target in _DIVS and isinstance(a, torch.fx.Node) and isinstance(b, Number) and b != 0:
        return a, 1.0 / float(b), 0.0
    return None


def _clamp_step(node: torch.fx.Node) -> tuple[torch.fx.Node, float, float, float, float] | None:
    """``(u, m, c, lo, hi)`` when ``node`` computes ``clamp(m * u + c, lo, hi)``, else ``None``."""
    u = node.args[0] if node.args else None
    if node.target is aten.hardsigmoid.default:
        return u, 1 / 6, 0.5, 0.0, 1.0
    if node.target is aten.relu.default:
        return u, 1.0, 0.0, 0.0, math.inf
    if node.target is aten.hardtanh.default:
        lo, hi = (list(node.args[1:3]) + [-1.0, 1.0][len(node.args) - 1:])[:2]
        return u, 1.0, 0.0, float(lo), float(hi)
    if node.target is aten.clamp.default:
        lo = node.args[1] if len(node.args) > 1 else node.kwargs.get("min")
        hi = node.args[2] if len(node.args) > 2 else node.kwargs.get("max")
        return u, 1.0, 0.0, -math.inf if lo is None else float(lo), math.inf if hi is None else float(hi)
    return None


def trace_coefficient(gm: torch.fx.GraphModule, a: torch.fx.Node) -> Coefficient:
    """Read the path from a constant-weight Linear to the slope ``a``; raise :class:`Mismatch` if it is not foldable."""
    chain: list[torch.fx.Node] = []
    node = a
    while not (node.op == "call_function" and node.target is LINEAR):
        check(node.op == "call_function", f"{node.name} is not computed from a linear layer")
        check(len(node.users) == 1, f"{node.name} has other users")
        chain.append(node)
        if node.target is operator.getitem:
            split = node.args[0]
            check(isinstance(split, torch.fx.Node) and split.target in _SPLITS, f"{node.name}: not a chunk/split")
            check(all(u.target is operator.getitem for u in split.users), f"{split.name} has other users")
            chain.append(split)
            upstream = split.args[0]
        elif node.target in (aten.unsqueeze.default, aten.slice.Tensor):
            upstream = node.args[0]
        else:
            step = _scalar_step(node) or _clamp_step(node)
            check(step is not None,
                  f"{node.name} ({node.target}) is not a scalar step, clamp, slice or unsqueeze")
            upstream = step[0]
        check(isinstance(upstream, torch.fx.Node), f"{node.name} has no tensor input")
        node = upstream
    linear = node
    weight = attr_value(gm, linear.args[1])
    check(weight is not None and weight.dim() == 2, "the linear layer's weight is not a constant")
    check(len(linear.args) < 3 or linear.args[2] is None or attr_value(gm, linear.args[2]) is not None,
          "the linear layer's bias is not a constant")
    val = a.meta.get("val")
    check(val is not None, f"{a.name} has no shape information")
    rank = val.dim() - sum(1 for n in chain if n.target is aten.unsqueeze.default)  # the Linear's output rank
    coefficient = Coefficient(linear, 0, weight.shape[0])
    _compose(coefficient, list(reversed(chain)), rank=rank)
    return coefficient


def _compose(co: Coefficient, chain: list[torch.fx.Node], rank: int) -> None:
    """Compose ``chain`` (from the Linear's output forward) into ``co``."""
    inner = [1.0, 0.0]  # m, c before the clamp
    outer = [1.0, 0.0]  # m, c after it
    feature = rank - 1  # where the Linear's feature dimension is now
    pending_split: torch.fx.Node | None = None
    for node in chain:
        if node.target in _SPLITS:
            pending_split = node
            continue
        if node.target is operator.getitem:
            _take_split(co, pending_split, node.args[1], feature, rank)
            co.steps += 1
            continue
        if node.target is aten.unsqueeze.default:
            d = node.args[1] if node.args[1] >= 0 else node.args[1] + rank + 1
            feature += d <= feature
            rank += 1
            co.unsqueeze.append(d)
            continue
        if node.target is aten.slice.Tensor:
            dim, start, end, step = (list(node.args[1:]) + [0, None, None, 1][len(node.args) - 1:])[:4]
            check(step == 1 and (dim if dim >= 0 else dim + rank) == feature, f"{node.name} slices another dimension")
            length = co.stop - co.start
            start = 0 if start is None else (start + length if start < 0 else start)
            end = length if end is None else min(end + length if end < 0 else end, length)
            co.start, co.stop = co.start + start, co.start + max(end, start)
            co.steps += 1
            continue
        step = _scalar_step(node)
        if step is not None:
            _, m, c = step
            target = inner if co.bounds is None else outer
            target[0], target[1] = m * target[0], m * target[1] + c
            co.steps += 1
            continue
        clamp = _clamp_step(node)
        check(clamp is not None, f"{node.name} ({node.target}) is not a scalar step, clamp, slice or unsqueeze")
        check(co.bounds is None, f"{node.name}: a second clamp")
        _, m, c, lo, hi = clamp
        inner[0], inner[1] = m * inner[0], m * inner[1] + c
        co.bounds = (lo, hi)
        co.steps += node.target is not aten.clamp.default and (m, c) != (1.0, 0.0)
    k, m = outer
    check(k != 0, "the slope does not depend on the hyper-function (scale 0)")
    co.scale, co.shift = k * inner[0], k * inner[1] + m
    if co.bounds is not None:
        lo, hi = sorted((k * co.bounds[0] + m, k * co.bounds[1] + m))
        co.bounds = (lo, hi)


def _take_split(co: Coefficient, split: torch.fx.Node, index: int, feature: int, rank: int) -> None:
    dim = split.args[2] if len(split.args) > 2 else split.kwargs.get("dim", 0)
    check((dim if dim >= 0 else dim + rank) == feature, f"{split.name} splits another dimension")
    length = co.stop - co.start
    if split.target is aten.chunk.default:
        size = -(-length // split.args[1])
        sizes = [min(size, length - i) for i in range(0, length, size)]
    elif split.target is aten.split.Tensor:
        sizes = [min(split.args[1], length - i) for i in range(0, length, split.args[1])]
    else:
        sizes = list(split.args[1])
    start = co.start + sum(sizes[:index])
    co.start, co.stop = start, start + sizes[index]


@dataclass
class Site:
    """``maximum(x * a1, x * a2)``."""

    node: torch.fx.Node
    x: torch.fx.Node
    slopes: tuple[torch.fx.Node, torch.fx.Node]


def find_site(node: torch.fx.Node) -> Site | None:
    """A DY-ReLU candidate: a maximum of two products that share a factor."""
    if node.op != "call_function" or node.target is not MAXIMUM:
        return None
    m1, m2 = node.args[:2]
    if not all(isinstance(m, torch.fx.Node) and m.target is MUL and len(m.args) == 2 for m in (m1, m2)):
        return None
    for x in m1.args:
        if isinstance(x, torch.fx.Node) and x in m2.args:
            a1 = m1.args[1] if m1.args[0] is x else m1.args[0]
            a2 = m2.args[1] if m2.args[0] is x else m2.args[0]
            return Site(node, x, (a1, a2))
    return None


def check_site(site: Site) -> None:
    """Refuse a maximum whose products are used elsewhere or whose slopes are not per channel."""
    for product in site.node.args[:2]:
        check(len(product.users) == 1, f"{product.name} has other users")
    x = site.x.meta.get("val")
    check(x is not None and x.dim() >= 3, "the feature map's shape is unknown or has no spatial dims")
    for a in site.slopes:
        check(isinstance(a, torch.fx.Node), "a slope is a Python scalar (a leaky ReLU, not a DY-ReLU)")
        val = a.meta.get("val")
        check(val is not None and val.dim() == x.dim(), f"{a.name}: shape unknown or of another rank")
        check(all(isinstance(s, int) and s == 1 for s in val.shape[2:]),
              f"{a.name} {list(val.shape)}: slopes vary over the spatial dims, not one per channel")
        check(val.shape[1] in (1, x.shape[1]), f"{a.name}: channel count differs from the feature map's")


def input_dependent(graph: torch.fx.Graph) -> set[torch.fx.Node]:
    """Nodes whose value depends on a graph input (graph order is topological)."""
    dependent: set[torch.fx.Node] = set()
    for n in graph.nodes:
        if n.op == "placeholder" or any(i in dependent for i in n.all_input_nodes):
            dependent.add(n)
    return dependent


def evaluate_constants(gm: torch.fx.GraphModule, nodes: list[torch.fx.Node]) -> list[torch.Tensor]:
    """Values of nodes that depend on no input, computed from the graph's own attributes."""
    needed: set[torch.fx.Node] = set()
    stack = list(nodes)
    while stack:
        n = stack.pop()
        if n not in needed:
            needed.add(n)
            stack.extend(n.all_input_nodes)
    graph = torch.fx.Graph()
    env: dict[torch.fx.Node, torch.fx.Node] = {}
    for n in gm.graph.nodes:
        if n in needed:
            env[n] = graph.node_copy(n, lambda m: env[m])
    graph.output(tuple(env[n] for n in nodes))
    with torch.no_grad():
        return list(torch.fx.GraphModule(gm, graph)())


def _copy_shape(old: torch.fx.Node, new: torch.fx.Node) -> None:
    """Give a replacement node the traced shape of the node it stands in for (same shape, same dtype).

    Later passes, and this one run again, read shapes from ``meta["val"]``;
    propagating fake tensors through every new node costs about a second per
    site, copying the known answer costs nothing.
    """
    if "val" in old.meta:
        new.meta["val"] = old.meta["val"]


def _relu_form(graph: torch.fx.Graph, x, negative, gap) -> torch.fx.Node:
    """``n x + (p - n) relu(x)``."""
    call = graph.call_function
    return call(aten.add.Tensor, (call(MUL, (x, negative)), call(MUL, (call(aten.relu.default, (x,)), gap))))


@register_pass
class FoldDynamicReluPass(GraphPass):
    id = "fold_dynamic_relu"
    after = ("fold_batchnorm",)
    description = "fold DY-ReLU's hsigmoid/affine steps into its hyper Linear; max(a1 x, a2 x) per channel"

    def __init__(self, form: str = DEFAULT_FORM):
        if form not in FORMS:
            raise ValueError(f"unknown DY-ReLU form {form!r}; choose from {', '.join(FORMS)}")
        self.form = form

    def run(self, gm: torch.fx.GraphModule) -> PassResult:
        result = PassResult(self.id, details={"form": self.form, "hyper_functions_folded": 0, "static": 0})
        for node in list(gm.graph.nodes):
            site = find_site(node)
            if site is None:
                continue
            try:
                check_site(site)
            except Mismatch as why:
                result.skip(node, str(why))
                continue
            if self._rewrite(gm, site, result):
                result.rewrites += 1
        if result.changed:
            finalize(gm)
        return result

    def _rewrite(self, gm, site: Site, result: PassResult) -> bool:
        dependent = input_dependent(gm.graph)
        with gm.graph.inserting_before(site.node):
            if not any(a in dependent for a in site.slopes):
                try:
                    y = self._static(gm, site)
                    result.details["static"] += 1
                    _copy_shape(site.node, y)
                    site.node.replace_all_uses_with(y)
                    return True
                except Mismatch as why:
                    result.skip(site.node, f"slopes are constant but not static-foldable: {why}")
            slopes, folded = self._fold_slopes(gm, site, result)
            if self.form == "maximum" and not folded:
                return False
            y = self._emit(gm.graph, site.x, *slopes, self.form)
        _copy_shape(site.node, y)
        if self.form == "maximum":
            for old, new in zip(site.node.args[:2], y.args[:2]):
                _copy_shape(old, new)
        site.node.replace_all_uses_with(y)
        return True

    def _fold_slopes(self, gm, site: Site, result: PassResult) -> tuple[tuple[torch.fx.Node, torch.fx.Node], bool]:
        """The slopes computed straight from the hyper Linear, when both fold."""
        try:
            coefficients = [trace_coefficient(gm, a) for a in site.slopes]
        except Mismatch as why:
            result.skip(site.node, f"hyper-function not folded: {why}")
            return site.slopes, False
        if all(c.folded_already for c in coefficients):
            return site.slopes, False
        result.details["hyper_functions_folded"] += 1
        slopes = tuple(self._folded_slope(gm, site.node, c) for c in coefficients)
        for old, new in zip(site.slopes, slopes):
            _copy_shape(old, new)
        return slopes, True

    def _folded_slope(self, gm, anchor: torch.fx.Node, co: Coefficient) -> torch.fx.Node:
        linear = co.linear
        weight = attr_value(gm, linear.args[1]).double()
        bias_node = linear.args[2] if len(linear.args) > 2 else None
        bias = attr_value(gm, bias_node).double() if bias_node is not None else torch.zeros(weight.shape[0]).double()
        w = (co.scale * weight[co.start:co.stop]).float()
        b = (co.scale * bias[co.start:co.stop] + co.shift).float()
        graph = gm.graph
        w_node = add_constant(gm, anchor, "dyrelu_weight", w)
        b_node = add_constant(gm, anchor, "dyrelu_bias", b)
        out = graph.call_function(LINEAR, (linear.args[0], w_node, b_node))
        if co.bounds is not None:
            lo, hi = (None if math.isinf(v) else v for v in co.bounds)
            out = graph.call_function(aten.clamp.default, (out, lo, hi))
        for d in co.unsqueeze:
            out = graph.call_function(aten.unsqueeze.default, (out, d))
        return out

    @staticmethod
    def _emit(graph: torch.fx.Graph, x, a1, a2, form: str) -> torch.fx.Node:
        """``max(a1 x, a2 x)`` in ``form``; the max/min run on the small slope tensors."""
        call = graph.call_function
        if form == "maximum":
            return call(MAXIMUM, (call(MUL, (x, a1)), call(MUL, (x, a2))))
        p, n = call(MAXIMUM, (a1, a2)), call(aten.minimum.default, (a1, a2))
        if form == "where":
            return call(MUL, (x, call(aten.where.self, (call(aten.ge.Scalar, (x, 0)), p, n))))
        return _relu_form(graph, x, n, call(aten.sub.Tensor, (p, n)))

    def _static(self, gm, site: Site) -> torch.fx.Node:
        """Constant slopes: a per-channel PReLU, its positive slope folded into the next conv if it can be."""
        x_val = site.x.meta["val"]
        a1, a2 = evaluate_constants(gm, list(site.slopes))
        check(all(a.dim() == x_val.dim() and a.shape[0] == 1 for a in (a1, a2)), "slopes vary over the batch")
        channels = x_val.shape[1]
        p = torch.maximum(a1, a2).expand(1, channels, *a1.shape[2:]).contiguous()
        n = torch.minimum(a1, a2).expand_as(p).contiguous()
        graph = gm.graph
        if not bool((p > 0).all()):
            negative = add_constant(gm, site.node, "dyrelu_negative", n)
            return _relu_form(graph, site.x, negative, add_constant(gm, site.node, "dyrelu_gap", p - n))
        slope = add_constant(gm, site.node, "prelu_weight", (n / p).flatten())
        y = graph.call_function(aten.prelu.default, (site.x, slope))
        users = list(site.node.users)
        if len(users) == 1 and self._scale_conv_input(gm, users[0], site.node, p.flatten()):
            return y
        return graph.call_function(MUL, (y, add_constant(gm, site.node, "prelu_scale", p)))

    @staticmethod
    def _scale_conv_input(gm, conv: torch.fx.Node, source: torch.fx.Node, scale: torch.Tensor) -> bool:
        """Fold a per-channel scale of ``conv``'s input into its weight; ``False`` if it cannot."""
        if not (conv.op == "call_function" and conv.target in CONVS and conv.args[0] is source):
            return False
        weight = attr_value(gm, conv.args[1])
        groups = conv_arguments(conv)["groups"]
        if weight is None or weight.shape[1] * groups != scale.numel():
            return False
        per_group = scale.reshape(groups, -1).repeat_interleave(weight.shape[0] // groups, dim=0)  # [O, C/groups]
        scaled = weight.double() * per_group.double().reshape(*per_group.shape, *(1,) * (weight.dim() - 2))
        args = list(conv.args)
        args[1] = add_constant(gm, conv, "prelu_conv_weight", scaled.to(weight.dtype))
        conv.args = tuple(args)
        return True
