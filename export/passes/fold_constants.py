"""Evaluate, once at export time, every op whose tensor inputs are all constants.

A rewrite can leave subgraphs that read only parameters: after
``attention_to_bmm``, Mobile-Former's learned tokens entering the first block
go through ``repeat``, their q projection and a gate, all the same for every
image. Each such op is computed now and replaced by a new constant
(``f(c1, c2) -> c``), so the runtime never repeats it; the inputs nothing
reads any more are dropped with the graph's other unread attributes.

Only the ops in :data:`FOLDABLE` are evaluated (views, elementwise
arithmetic, linear algebra, normalizations: ops whose result is the same on
every runtime), never one with a symbolic size among its arguments, and
never one whose result has more than :data:`MAX_FOLDED_ELEMENTS` elements (a
``repeat`` or ``expand`` could turn a small parameter into a large one: such
a site is skipped with that reason).
"""

from __future__ import annotations

import torch
import torch.fx

from .base import GraphPass, PassResult, check
from .builder import add_constant
from .ops import DIVS, LINEAR, MULS, VIEW_OPS, attr_value

aten = torch.ops.aten

# Ops whose result may be precomputed when every tensor input is a constant.
FOLDABLE = VIEW_OPS + MULS + DIVS + (
    LINEAR, aten.repeat.default, aten.add.Tensor, aten.sub.Tensor, aten.hardsigmoid.default,
    aten.relu.default, aten.sigmoid.default, aten.clone.default, aten.slice.Tensor, aten.bmm.default,
    aten.softmax.int, aten.layer_norm.default, aten.gelu.default, aten.mm.default, aten.addmm.default,
    aten.t.default, aten.expand.default,
)
# Constants larger than this stay computed at run time (a repeat could make a huge one).
MAX_FOLDED_ELEMENTS = 1 << 20


def _symbolic(arg) -> bool:
    return isinstance(arg, (torch.SymInt, torch.SymFloat))


def _flat(args):
    for a in args:
        if isinstance(a, (list, tuple)):
            yield from _flat(a)
        else:
            yield a


class FoldConstantsPass(GraphPass):
    id = "fold_constants"
    after = ("fold_batchnorm", "fuse_dwconv_ffn", "split_depthwise_multiplier", "fold_dynamic_relu",
             "attention_to_bmm")
    description = "evaluate ops that read only constants once at export time (e.g. learned tokens' projections)"

    def candidates(self, gm):
        return [n for n in gm.graph.nodes if n.op == "call_function" and n.target in FOLDABLE]

    def match(self, gm, node: torch.fx.Node) -> tuple[torch.fx.Node, torch.Tensor] | None:
        """The node's value if every tensor input is a constant (a fold earlier in graph order counts)."""
        inputs = node.all_input_nodes
        if not inputs or any(attr_value(gm, n) is None for n in inputs) or any(map(_symbolic, _flat(node.args))):
            return None
        constant = lambda n: attr_value(gm, n)  # noqa: E731
        with torch.no_grad():
            value = node.target(*torch.fx.node.map_arg(node.args, constant), **torch.fx.node.map_arg(node.kwargs, constant))
        if not isinstance(value, torch.Tensor):
            return None
        check(value.numel() <= MAX_FOLDED_ELEMENTS,
              f"constant of {value.numel()} elements is larger than {MAX_FOLDED_ELEMENTS}: computed at run time")
        return node, value

    def rewrite(self, gm, site, result: PassResult) -> None:
        node, value = site
        replacement = add_constant(gm, node, "folded", value.contiguous())
        replacement.meta["val"] = node.meta.get("val")
        node.replace_all_uses_with(replacement)
