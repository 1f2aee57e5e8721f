"""View chains: how an attention operand was cut out of its source tensor.

Matching is semantic: each operand is traced back through view ops
(flatten, unflatten, transpose, permute, view, reshape, unbind) to its
source, and the chain is replayed on an index tensor (``arange`` of the
source's shape) to check that the operand *is* the expected layout of that
source, whatever ops spelled it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.fx

from ..base import check
from ..ops import GETITEM, UNBIND, VIEW_OPS, hint, is_call, val


def shape(node) -> tuple[int, ...]:
    """``node``'s traced shape with symbolic sizes at their example values; refuses a node without one."""
    value = val(node)
    check(value is not None, f"{getattr(node, 'name', node)} has no shape information")
    return tuple(hint(s) for s in value.shape)


def is_unbind_item(node) -> bool:
    return is_call(node, GETITEM) and is_call(node.args[0], UNBIND)


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
        elif is_unbind_item(node):
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
            return torch.empty(tuple(hint(s) for s in value.shape))
        return hint(value)
    if isinstance(arg, (list, tuple)):
        return type(arg)(_concrete(a) for a in arg)
    if isinstance(arg, torch.SymInt):
        return hint(arg)
    return arg


def replay(ops: list[torch.fx.Node], index: torch.Tensor) -> torch.Tensor:
    """Apply the view ops ``ops`` to ``index`` in place of their first argument."""
    for op in ops:
        if is_unbind_item(op):
            unbind = op.args[0]
            dim = unbind.args[1] if len(unbind.args) > 1 else unbind.kwargs.get("dim", 0)
            index = index.select(dim, op.args[1])
        else:
            index = op.target(index, *_concrete(op.args[1:]), **_concrete(op.kwargs))
    return index


def index(dims: tuple[int, ...]) -> torch.Tensor:
    """Every element's flat position, in a tensor of shape ``dims``."""
    return torch.arange(math.prod(dims)).reshape(dims)


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
    operand = val(nodes[-1])
    if operand is None or operand.dim() != 4:
        return None
    for i in range(len(nodes) - 2, -1, -1):
        value = val(nodes[i])
        if value is not None and value.dim() == 4:
            pixels = hint(value.shape[2]) * hint(value.shape[3])
            if pixels in (hint(operand.shape[2]), hint(operand.shape[3])):
                return ViewChain(nodes[i], nodes[i + 1:])
    return None


def check_tail(out: torch.fx.Node, expected: torch.Tensor, what: str) -> torch.fx.Node:
    """The last view after ``out`` if the views lay its result out as ``expected``; refuse otherwise."""
    tail = forward_chain(out)
    check(tail and same_layout(replay(tail, index(shape(out))), expected), f"the attention output is not {what}")
    return tail[-1]
