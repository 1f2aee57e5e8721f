"""The one way a pass adds nodes: before an anchor, each with its shape metadata.

Later matches (and the same pass run again) read shapes from
``meta["val"]``, so a node without it would make the next pass refuse a site
it should rewrite. :class:`NodeBuilder` gives every node it emits a value:
copied from the node it stands in for when the caller knows the answer
(``like=``), else computed by running the op on its inputs' fake values.
"""

from __future__ import annotations

import torch
import torch.fx

from .ops import attr_value


def add_constant(gm: torch.fx.GraphModule, anchor: torch.fx.Node, stem: str, value: torch.Tensor) -> torch.fx.Node:
    """Register ``value`` as a new parameter of ``gm`` and return a ``get_attr`` node before ``anchor``."""
    name, i = f"_mobexport_{stem}", 0
    while hasattr(gm, f"{name}_{i}"):
        i += 1
    name = f"{name}_{i}"
    gm.register_parameter(name, torch.nn.Parameter(value.detach().clone(), requires_grad=False))
    with gm.graph.inserting_before(anchor):
        return gm.graph.get_attr(name)


def fake_value(gm: torch.fx.GraphModule, node: torch.fx.Node):
    """Run ``node``'s op on its inputs' fake values (constants converted) to get its own; ``None`` without any."""
    from torch._guards import detect_fake_mode

    vals = [n.meta.get("val") for n in node.all_input_nodes]
    mode = detect_fake_mode([v for v in vals if isinstance(v, torch.Tensor)])
    if mode is None:
        return None
    if all(has_static_shape(v) for v in vals if isinstance(v, torch.Tensor)):
        value = meta_value(gm, node, mode)
        if value is not None:
            return value

    def as_fake(n: torch.fx.Node):
        value = n.meta.get("val")
        if value is None and n.op == "get_attr":
            value = mode.from_tensor(attr_value(gm, n), static_shapes=True)  # a constant has one shape
        return value

    with mode:
        return node.target(*torch.fx.node.map_arg(node.args, as_fake), **torch.fx.node.map_arg(node.kwargs, as_fake))


def has_static_shape(value: torch.Tensor) -> bool:
    return all(isinstance(d, int) for d in value.shape)


def meta_value(gm: torch.fx.GraphModule, node: torch.fx.Node, mode):
    """The fast path of :func:`fake_value` for static shapes: the op's meta kernel, its result made fake.

    A fake op consults the program's symbolic shape environment even when
    every size is a number; ``stack`` and ``flatten`` spent about half a
    second each there (sympy), which was most of an export's rewrite step.
    Meta tensors carry the same shape, stride and dtype without it. ``None``
    where the op has no meta kernel: the caller then takes the fake path.
    """
    device = next(v.device for v in (n.meta.get("val") for n in node.all_input_nodes)
                  if isinstance(v, torch.Tensor))

    def as_meta(n: torch.fx.Node):
        value = n.meta.get("val")
        if value is None and n.op == "get_attr":
            return attr_value(gm, n).to("meta")
        if isinstance(value, torch.Tensor):
            return torch.empty_strided(value.shape, value.stride(), dtype=value.dtype, device="meta")
        return value

    try:
        out = node.target(*torch.fx.node.map_arg(node.args, as_meta), **torch.fx.node.map_arg(node.kwargs, as_meta))
    except (NotImplementedError, RuntimeError):
        return None
    to_fake = mode.fake_tensor_converter.from_meta_and_device
    return torch.utils._pytree.tree_map_only(torch.Tensor, lambda t: to_fake(mode, t, device), out)


class NodeBuilder:
    """Inserts nodes before ``anchor`` in ``gm``'s graph, each with its ``meta["val"]``."""

    def __init__(self, gm: torch.fx.GraphModule, anchor: torch.fx.Node):
        self.gm, self.anchor = gm, anchor

    def __call__(self, target, *args, like: torch.fx.Node | None = None, **kwargs) -> torch.fx.Node:
        """``target(*args, **kwargs)`` as a new node; its value copied from ``like`` (same shape) or computed."""
        with self.gm.graph.inserting_before(self.anchor):
            node = self.gm.graph.call_function(target, args, kwargs)
        if like is not None:
            if "val" in like.meta:
                node.meta["val"] = like.meta["val"]
        else:
            node.meta["val"] = fake_value(self.gm, node)
        return node

    def constant(self, stem: str, value: torch.Tensor) -> torch.fx.Node:
        """A new parameter holding ``value``, read by a ``get_attr`` node before the anchor."""
        return add_constant(self.gm, self.anchor, stem, value)
