"""Fold Dynamic ReLU's constant steps into its hyper-function's Linear.

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
per DY-ReLU become two clamps (``dynamic_relu/coefficients.py`` reads any
chain of scalar steps, one clamp, slices and unsqueezes, back to a Linear or
an ungrouped conv, e.g. a 1x1 conv on the pooled map). The max stays
``max(a1 x, a2 x)``: three full-map ops, the same count as the other
standard-op forms, and the only one whose every op XNNPACK's delegate takes
(``where`` leaves it). Other spellings of the max are a study
(``benchmarks/studies/dynamic_relu_forms.py``); no timing of them is recorded.

**Static.** When the slopes do not depend on the network input, the op
becomes a per-channel PReLU instead (``dynamic_relu/static_prelu.py``).

**Refuses** a ``max`` whose products are used elsewhere, whose coefficients
are not one value per (sample, channel), and one whose coefficient's path to
a constant-weight Linear holds anything else: another nonlinearity, a second
clamp, a tensor-valued step, a slice of another dimension, or a node used
elsewhere.
"""

from __future__ import annotations

import math

import torch
import torch.fx

from .base import GraphPass, Mismatch, PassResult, call_nodes
from .builder import NodeBuilder
from .dynamic_relu.coefficients import Coefficient, trace_coefficient
from .dynamic_relu.site import Site, check_site, find_site
from .dynamic_relu.static_prelu import static_prelu
from .ops import MAXIMUM, MAXIMUMS, MUL, attr_value, input_dependent

aten = torch.ops.aten


def folded_slope(emit: NodeBuilder, co: Coefficient, like: torch.fx.Node) -> torch.fx.Node:
    """``clamp(W' r + b', lo, hi)`` unsqueezed as the slope it replaces (``like``)."""
    layer = co.layer
    weight = attr_value(emit.gm, layer.args[1]).double()
    bias_node = layer.args[2] if len(layer.args) > 2 else None
    bias = attr_value(emit.gm, bias_node).double() if bias_node is not None else torch.zeros(weight.shape[0]).double()
    w = emit.constant("dyrelu_weight", (co.scale * weight[co.start:co.stop]).float())
    b = emit.constant("dyrelu_bias", (co.scale * bias[co.start:co.stop] + co.shift).float())
    steps = [(layer.target, (layer.args[0], w, b, *layer.args[3:]))]  # the Linear or conv, rows sliced
    if co.bounds is not None:
        steps.append((aten.clamp.default, tuple(None if math.isinf(v) else v for v in co.bounds)))
    steps += [(aten.unsqueeze.default, (d,)) for d in co.unsqueeze]
    out = None
    for i, (target, args) in enumerate(steps):
        last = i == len(steps) - 1
        out = emit(target, *(args if out is None else (out, *args)), like=like if last else None)
    return out


class FoldDynamicReluPass(GraphPass):
    id = "fold_dynamic_relu"
    after = ("fold_batchnorm",)
    description = "fold DY-ReLU's hsigmoid/affine steps into its hyper Linear; constant slopes become a PReLU"

    def start(self, gm) -> dict:
        return {"form": "maximum", "hyper_functions_folded": 0, "static": 0}

    def candidates(self, gm):
        return call_nodes(gm, MAXIMUMS)

    def match(self, gm, node: torch.fx.Node) -> Site | None:
        site = find_site(node)
        if site is not None:
            check_site(site)
        return site

    def rewrite(self, gm, site: Site, result: PassResult) -> bool:
        if not any(a in input_dependent(gm.graph) for a in site.slopes):
            try:
                y = static_prelu(gm, site)
            except Mismatch as why:
                result.skip(site.node, f"slopes are constant but not static-foldable: {why}")
            else:
                if "val" in site.node.meta:
                    y.meta["val"] = site.node.meta["val"]
                site.node.replace_all_uses_with(y)
                result.details["static"] += 1
                return True
        try:
            coefficients = [trace_coefficient(gm, a) for a in site.slopes]
        except Mismatch as why:
            result.skip(site.node, f"hyper-function not folded: {why}")
            return False
        if all(c.folded_already for c in coefficients):
            return False
        result.details["hyper_functions_folded"] += 1
        emit = NodeBuilder(gm, site.node)
        a1, a2 = (folded_slope(emit, c, like=old) for c, old in zip(coefficients, site.slopes))
        p1, p2 = site.node.args[:2]
        y = emit(MAXIMUM, emit(MUL, site.x, a1, like=p1), emit(MUL, site.x, a2, like=p2), like=site.node)
        site.node.replace_all_uses_with(y)
        return True
