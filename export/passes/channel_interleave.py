"""The channel interleave ``split_depthwise_multiplier`` writes, and the shuffle that can undo it.

The split leaves ``y = stack((y_0, ..., y_{m-1}), 2).flatten(1, 2)``: channel
``c m + j`` of ``y`` is channel ``c`` of ``y_j``, where each ``y_j`` has ``C``
channels. ``cat((y_0, ..., y_{m-1}), 1)`` holds the same maps in another
order: channel ``j C + c``. The passes that remove the interleave read it here.
"""

from __future__ import annotations

import torch
import torch.fx
from torch.fx.experimental.symbolic_shapes import is_concrete_int

from .base import call_nodes
from .ops import ACTIVATIONS, is_call, val

aten = torch.ops.aten

CHANNELWISE = ACTIVATIONS + (aten.clamp.default,)  # unary ops that treat every channel alike


def interleaves(gm: torch.fx.GraphModule) -> list[torch.fx.Node]:
    """Every interleave in ``gm`` (the candidates of the passes that remove them), in graph order."""
    return [n for n in call_nodes(gm, aten.flatten.using_ints) if interleave_pieces(n) is not None]


def interleave_pieces(node: torch.fx.Node) -> list[torch.fx.Node] | None:
    """The maps ``y_j`` when ``node`` is ``stack((y_0, ..), 2).flatten(1, 2)`` of 4-D maps, else ``None``."""
    if not is_call(node, aten.flatten.using_ints) or tuple(node.args[1:3]) != (1, 2):
        return None
    stack = node.args[0]
    if not is_call(stack, aten.stack.default) or len(stack.users) != 1:
        return None
    pieces, dim = stack.args[0], stack.args[1] if len(stack.args) > 1 else 0
    shapes = [sizes(p) for p in pieces]
    if len(pieces) < 2 or dim not in (2, -3) or any(s is None or len(s) != 4 or s != shapes[0] for s in shapes):
        return None
    return list(pieces)


def sizes(node) -> list[int | None] | None:
    """``node``'s shape with ``None`` for a size that varies (comparing one would need a guard).

    A size the fake op computed from numbers alone is a symbol with a constant value: an int here.
    """
    value = val(node)
    return None if value is None else [int(d) if is_concrete_int(d) else None for d in value.shape]


def undoing_shuffle(interleave: torch.fx.Node, pieces: list[torch.fx.Node]) -> torch.fx.Node | None:
    """The last node of a channel shuffle that restores concat order after ``interleave``, else ``None``.

    A shuffle in ``g`` groups is ``unflatten(1, (g, n)).transpose(1, 2).flatten(1, 2)``:
    output channel ``b g + a`` is input channel ``a n + b``. With ``g = C`` and
    ``n = m`` it sends ``c m + j`` to ``j C + c``: the concat order. Activations
    between the two (each read only by the next step) act on every channel alike.
    """
    m, groups = len(pieces), sizes(pieces[0])[1]
    node = interleave
    while len(node.users) == 1 and is_call(next(iter(node.users)), CHANNELWISE):
        node = next(iter(node.users))
    unflatten = next(iter(node.users)) if len(node.users) == 1 else None
    if not is_call(unflatten, aten.unflatten.int) or unflatten.args[1] not in (1, -3) or len(unflatten.users) != 1:
        return None
    if groups is None or list(unflatten.args[2]) not in ([groups, m], [groups, -1], [-1, m]):
        return None
    transpose = next(iter(unflatten.users))
    if not is_call(transpose, aten.transpose.int) or sorted(transpose.args[1:3]) != [1, 2] or len(transpose.users) != 1:
        return None
    flatten = next(iter(transpose.users))
    if not is_call(flatten, aten.flatten.using_ints) or tuple(flatten.args[1:3]) != (1, 2):
        return None
    return flatten
