"""Merge a depthwise conv's identity shortcut into the conv: ``x + dw(x) -> dw'(x)``.

CMT's local perception unit (``x + dw3x3(x)``) and the inner shortcut of its
IRFFN (``y + dw3x3(y)``) add a depthwise conv's input to its output. With one
input channel per group, output channel ``c`` reads only input channel ``c``,
and the kernel's centre tap reads exactly the pixel the shortcut adds::

    x[c, i, j] + sum_{u,v} w[c, 0, u, v] x[c, i+u-r, j+v-r] + b[c]
        = sum_{u,v} w'[c, 0, u, v] x[c, i+u-r, j+v-r] + b[c]
    with w' = w, except w'[c, 0, r, r] = w[c, 0, r, r] + 1      (r = (k-1)/2)

so the add disappears and the feature map is read once instead of twice.

It applies when the conv is depthwise (``groups == C_in == C_out``, weight
``[C, 1, kh, kw]``), both kernel sizes are odd, stride and dilation are 1 and
the padding is ``(kh-1)/2, (kw-1)/2`` ("same"): then the centre tap sits on
``x[c, i, j]`` at every output pixel, borders included. It does not apply to a
strided conv (output and input grids differ), an even kernel (no centre tap),
other padding (shifted or resized output), a dilated conv, an add that scales
an operand (``alpha != 1``), or a conv whose output has users besides the add
(they still need ``dw(x)`` without the shortcut).

Conv + batch-norm chains are ``fold_batchnorm``'s job, so this pass runs
after it: in CMT that folds every ``conv -> BN`` (K/V reduction, IRFFN
output, head) and every ``BN -> 1x1 conv`` (IRFFN ``proj_bn -> conv2``, the
stem's last BN into the first patch embedding). The BN between the IRFFN's
``GELU`` and its depthwise conv stays: the conv pads with zeros and a folded
shift would change the border pixels. Conv -> activation pairs (MobileNet's
``conv -> hardswish/ReLU``, CMT's ``dw' -> GELU``) are left adjacent, the form
every target fuses into one kernel; this pass only counts them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.fx

from .base import GraphPass, PassResult, call_nodes, check
from .builder import add_constant
from .ops import ACTIVATIONS, ADD, CONV2D_ANY, attr_value, conv_arguments, is_call, pairs


@dataclass
class Shortcut:
    """``add = conv(x) + x`` with the conv's constant weight."""

    add: torch.fx.Node
    conv: torch.fx.Node
    weight: torch.Tensor


def _shortcut_conv(add: torch.fx.Node) -> tuple[torch.fx.Node, torch.fx.Node] | None:
    """``(conv, x)`` if ``add`` is ``conv(x) + x`` or ``x + conv(x)``, else ``None``."""
    if len(add.args) < 2:
        return None
    for conv, other in ((add.args[0], add.args[1]), (add.args[1], add.args[0])):
        if is_call(conv, CONV2D_ANY) and conv.args[0] is other:
            return conv, other
    return None


def check_mergeable(gm: torch.fx.GraphModule, add: torch.fx.Node, conv: torch.fx.Node, x: torch.fx.Node) -> torch.Tensor:
    """The conv's weight if the shortcut can go into its centre tap; otherwise raise :class:`Mismatch`."""
    check(add.kwargs.get("alpha", 1) == 1 and len(add.args) == 2, "the add scales an operand (alpha != 1)")
    check(len(conv.users) == 1, f"{conv.name} has other users, which need it without the shortcut")
    a = conv_arguments(conv)
    weight = attr_value(gm, a["weight"])
    check(weight is not None, "conv weight is not a constant")
    check(a["bias"] is None or attr_value(gm, a["bias"]) is not None, "conv bias is not a constant")
    check(weight.dim() == 4 and weight.is_floating_point(), "not a 2-D floating-point conv")
    channels = weight.shape[0]
    val = x.meta.get("val")
    in_channels = val.shape[1] if val is not None and val.dim() == 4 else None
    check(a["groups"] == channels and weight.shape[1] == 1 and in_channels == channels,
          f"not depthwise (groups={a['groups']}, weight {list(weight.shape)}, input channels {in_channels})")
    kh, kw = weight.shape[2:]
    check(kh % 2 == 1 and kw % 2 == 1, f"even kernel {kh}x{kw} has no centre tap")
    check(all(s == 1 for s in pairs(a["stride"])), f"stride {list(pairs(a['stride']))}: output grid is not the input's")
    check(all(d == 1 for d in pairs(a["dilation"])), f"dilation {list(pairs(a['dilation']))}")
    padding = a["padding"]
    if isinstance(padding, str):
        check(padding == "same", f"padding '{padding}' is not 'same'")
    else:
        check(pairs(padding) == (kh // 2, kw // 2),
              f"padding {list(pairs(padding))} is not 'same' ({kh // 2}, {kw // 2}) for a {kh}x{kw} kernel")
    return weight


def conv_activation_pairs(gm: torch.fx.GraphModule) -> int:
    """Convs whose only user is an activation: the pairs targets fuse into one kernel."""
    return sum(1 for n in call_nodes(gm, CONV2D_ANY) if len(n.users) == 1 and next(iter(n.users)).target in ACTIVATIONS)


class FuseDwconvFfnPass(GraphPass):
    id = "fuse_dwconv_ffn"
    after = ("fold_batchnorm",)
    description = "merge x + dwconv(x) into the depthwise conv's centre tap (CMT LPU, IRFFN)"

    def candidates(self, gm):
        return call_nodes(gm, ADD)

    def match(self, gm, add: torch.fx.Node) -> Shortcut | None:
        site = _shortcut_conv(add)  # read now: an earlier merge may have made this add a shortcut
        if site is None:
            return None
        conv, x = site
        return Shortcut(add, conv, check_mergeable(gm, add, conv, x))

    def rewrite(self, gm, site: Shortcut, result: PassResult) -> None:
        merged = site.weight.detach().clone()
        kh, kw = merged.shape[2:]
        merged[:, 0, kh // 2, kw // 2] += 1
        args = list(site.conv.args)
        args[1] = add_constant(gm, site.conv, "dwskip_weight", merged)
        site.conv.args = tuple(args)
        site.add.replace_all_uses_with(site.conv)
        gm.graph.erase_node(site.add)

    def finish(self, gm, result: PassResult) -> None:
        result.details["conv_activation_pairs"] = conv_activation_pairs(gm)
