"""The ATen vocabulary every pass shares, and the small graph helpers that read it.

One name per op set, so two passes cannot mean different ops by the same
word: ``CONV2D_ANY`` is every ``aten.conv2d`` overload, ``CONV_INT_PADDING``
the convs whose padding is a number (1-D and 2-D), and so on. Ops are
``torch.ops.aten.*`` objects, never strings.
"""

from __future__ import annotations

import operator

import torch
import torch.fx

aten = torch.ops.aten

LINEAR = aten.linear.default
CONV1D = aten.conv1d.default
CONV2D = aten.conv2d.default
CONV2D_PADDING = aten.conv2d.padding  # padding given as a string ("same" / "valid")
CONV2D_ANY = (CONV2D, CONV2D_PADDING)
CONV_INT_PADDING = (CONV1D, CONV2D)  # convs whose padding argument is a number or a list of numbers

BATCH_NORM = aten.batch_norm.default
BATCH_NORM_NO_TRAINING = aten._native_batch_norm_legit_no_training.default

MATMUL = aten.matmul.default
BMM = aten.bmm.default
SOFTMAXES = (aten.softmax.int, aten._softmax.default)
MAXIMUM = aten.maximum.default
MAXIMUMS = (MAXIMUM, aten.max.other)  # torch.maximum(a, b); torch.max(a, b) and a.max(b)
UNBIND = aten.unbind.int
GETITEM = operator.getitem

ADD = aten.add.Tensor
ADDS = (aten.add.Tensor, aten.add.Scalar)
SUBS = (aten.sub.Tensor, aten.sub.Scalar)
MUL = aten.mul.Tensor
MULS = (aten.mul.Tensor, aten.mul.Scalar)
DIVS = (aten.div.Tensor, aten.div.Scalar)
SPLITS = (aten.chunk.default, aten.split.Tensor, aten.split_with_sizes.default)

# Activations a target fuses into the conv before them.
ACTIVATIONS = (aten.relu.default, aten.relu_.default, aten.hardtanh.default, aten.hardtanh_.default,
               aten.hardswish.default, aten.hardswish_.default, aten.gelu.default, aten.silu.default,
               aten.silu_.default, aten.sigmoid.default, aten.hardsigmoid.default)

# Ops that only re-index their first argument (no arithmetic). ``contiguous`` copies into
# another memory layout: the same values at the same indices, so a replay treats it as a view.
VIEW_OPS = (
    aten.flatten.using_ints, aten.unflatten.int, aten.transpose.int, aten.permute.default,
    aten.view.default, aten.reshape.default, aten._unsafe_view.default, aten.reshape_as.default,
    aten.view_as.default, aten.unsqueeze.default, aten.squeeze.dim, aten.select.int,
    aten.contiguous.default,
)


def is_call(node, targets) -> bool:
    """``node`` is a call_function of one of ``targets`` (one op or a tuple)."""
    targets = targets if isinstance(targets, tuple) else (targets,)
    return isinstance(node, torch.fx.Node) and node.op == "call_function" and node.target in targets


def attr_value(gm: torch.fx.GraphModule, node) -> torch.Tensor | None:
    """The tensor behind a ``get_attr`` node, else ``None``."""
    if not isinstance(node, torch.fx.Node) or node.op != "get_attr":
        return None
    value = gm
    for part in str(node.target).split("."):
        value = getattr(value, part)
    return value if isinstance(value, torch.Tensor) else None


def conv_arguments(conv: torch.fx.Node) -> dict:
    """``aten.conv*``'s arguments by name, with the defaults the exported graph leaves out."""
    names = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
    args = dict(zip(names, (None, None, None, 1, 0, 1, 1)))
    args.update(zip(names, conv.args))
    args.update({k: v for k, v in conv.kwargs.items() if k in names})
    return args


def pairs(value, n: int = 2) -> tuple:
    """A conv's int-or-list argument as a tuple of ``n``."""
    return tuple(value) if isinstance(value, (list, tuple)) else (value,) * n


def val(node) -> torch.Tensor | None:
    """The traced (fake) value of ``node``, if it is a tensor."""
    value = node.meta.get("val") if isinstance(node, torch.fx.Node) else None
    return value if isinstance(value, torch.Tensor) else None


def hint(size) -> int:
    """An int for a size that may be symbolic (its example value)."""
    if isinstance(size, int):
        return size
    example = getattr(getattr(size, "node", None), "hint", None)
    return int(example) if example is not None else int(size)


def input_dependent(graph: torch.fx.Graph) -> set[torch.fx.Node]:
    """Nodes whose value depends on a graph input (graph order is topological)."""
    dependent: set[torch.fx.Node] = set()
    for n in graph.nodes:
        if n.op == "placeholder" or any(i in dependent for i in n.all_input_nodes):
            dependent.add(n)
    return dependent
