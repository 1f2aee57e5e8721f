"""The slope of a Dynamic ReLU as one affine map of its hyper-function's Linear, clamped.

A slope ``a`` is read back from the layer that makes it (``z = W r + b``: a
Linear, or an ungrouped conv such as a 1x1 conv on the pooled map, whose
output channels are rows of ``W`` just the same)
through any chain of scalar add/sub/mul/div, at most one clamp (hardsigmoid,
hardtanh, clamp, relu), chunk/split/slice of the Linear's feature dimension
and unsqueezes. For ``k > 0``, ``k clamp(u, lo, hi) + m = clamp(k u + m,
k lo + m, k hi + m)`` (the bounds swap for ``k < 0``), so the whole chain is
``clamp(scale * (W r + b)[start:stop] + shift, lo, hi)``: a :class:`Coefficient`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from numbers import Number

import torch
import torch.fx

from ..base import check
from ..ops import ADDS, CONV2D_ANY, DIVS, GETITEM, LINEAR, MULS, SPLITS, SUBS, attr_value, conv_arguments, is_call

aten = torch.ops.aten


@dataclass
class Coefficient:
    """A slope as ``clamp(scale * (W r + b)[start:stop] + shift, lo, hi)``, then ``unsqueeze(dims)``."""

    layer: torch.fx.Node  # the Linear or conv computing ``W r + b``
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
    if node.target in ADDS + MULS:
        u, s = (a, b) if isinstance(b, Number) else (b, a)
        if not (isinstance(u, torch.fx.Node) and isinstance(s, Number)):
            return None
        return (u, 1.0, float(s)) if node.target in ADDS else (u, float(s), 0.0)
    if node.target in SUBS and isinstance(a, torch.fx.Node) and isinstance(b, Number):
        return a, 1.0, -float(b)
    if node.target in DIVS and isinstance(a, torch.fx.Node) and isinstance(b, Number) and b != 0:
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


def _is_layer(node: torch.fx.Node) -> bool:
    """A Linear, or a conv whose output channels each read every input channel (rows of ``W``)."""
    return is_call(node, LINEAR) or (is_call(node, CONV2D_ANY) and conv_arguments(node)["groups"] == 1)


def trace_coefficient(gm: torch.fx.GraphModule, a: torch.fx.Node) -> Coefficient:
    """Read the path from a constant-weight Linear (or conv) to the slope ``a``; :class:`Mismatch` if not foldable."""
    chain: list[torch.fx.Node] = []
    node = a
    while not _is_layer(node):
        check(node.op == "call_function", f"{node.name} is not computed from a linear layer")
        sliced_twice = bool(chain) and all(u.target is aten.slice.Tensor for u in node.users)  # a[:, :C], a[:, C:]
        check(len(node.users) == 1 or sliced_twice, f"{node.name} has other users")
        chain.append(node)
        if node.target is GETITEM:
            split = node.args[0]
            check(isinstance(split, torch.fx.Node) and split.target in SPLITS, f"{node.name}: not a chunk/split")
            check(all(u.target is GETITEM for u in split.users), f"{split.name} has other users")
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
    layer = node
    weight = attr_value(gm, layer.args[1])
    check(weight is not None and weight.dim() == (2 if layer.target is LINEAR else 4),
          "the linear layer's weight is not a constant")
    check(len(layer.args) < 3 or layer.args[2] is None or attr_value(gm, layer.args[2]) is not None,
          "the linear layer's bias is not a constant")
    val = a.meta.get("val")
    check(val is not None, f"{a.name} has no shape information")
    rank = val.dim() - sum(1 for n in chain if n.target is aten.unsqueeze.default)  # the layer's output rank
    coefficient = Coefficient(layer, 0, weight.shape[0])
    _compose(coefficient, list(reversed(chain)), rank=rank, feature=rank - 1 if layer.target is LINEAR else 1)
    return coefficient


def _compose(co: Coefficient, chain: list[torch.fx.Node], rank: int, feature: int) -> None:
    """Compose ``chain`` (from the layer's output, whose feature dimension is ``feature``, forward) into ``co``."""
    inner = [1.0, 0.0]  # m, c before the clamp
    outer = [1.0, 0.0]  # m, c after it
    pending_split: torch.fx.Node | None = None
    for node in chain:
        if node.target in SPLITS:
            pending_split = node
            continue
        if node.target is GETITEM:
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
