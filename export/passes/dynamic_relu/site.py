"""A Dynamic ReLU site: ``maximum(x * a1, x * a2)`` with one slope pair per (sample, channel)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.fx

from ..base import check
from ..ops import MAXIMUMS, MUL, is_call


@dataclass
class Site:
    """``maximum(x * a1, x * a2)``."""

    node: torch.fx.Node
    x: torch.fx.Node
    slopes: tuple[torch.fx.Node, torch.fx.Node]


def find_site(node: torch.fx.Node) -> Site | None:
    """A DY-ReLU candidate: a maximum of two products that share a factor."""
    if not is_call(node, MAXIMUMS):
        return None
    m1, m2 = node.args[:2]
    if not all(is_call(m, MUL) and len(m.args) == 2 for m in (m1, m2)):
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
