"""Fold inference-mode batch norm into the adjacent convolution or linear layer.

Batch norm at inference is a per-channel affine map ``BN(y) = s * y + t`` with
``s = gamma / sqrt(var + eps)`` and ``t = beta - s * mean``.

*Conv/linear followed by BN* (``y = W x + b``)::

    BN(W x + b) = (s ⊙ W) x + (s * b + t)           # s scales W's output rows

*BN followed by a conv without padding* (``padding == 0``; 1x1 convs, CMT's
IRFFN ``BN -> 1x1``) and BN followed by a linear::

    W (s * x + t) + b = (W ⊙ s) x + (b + W t)       # s scales W's input channels

A padded conv cannot absorb a preceding BN: its zero padding would become
``t`` after the fold, so the border outputs would change. Grouped convs after
BN are refused for the same per-channel bookkeeping reason unless ``groups``
is 1. A BN whose producer or consumer is used elsewhere too is left alone,
since folding would change that other use.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.fx

from .base import GraphPass, Mismatch, PassResult, call_nodes, check
from .builder import add_constant
from .ops import BATCH_NORM, BATCH_NORM_NO_TRAINING, CONV_INT_PADDING, LINEAR, attr_value, is_call


def _bn_affine(gm: torch.fx.GraphModule, bn: torch.fx.Node) -> tuple[torch.Tensor, torch.Tensor]:
    """``(s, t)`` of an inference-mode batch norm node with constant statistics."""
    if bn.target is BATCH_NORM:
        x, weight, bias, mean, var, training, _momentum, eps = bn.args[:8]
        check(not training, "batch norm in training mode")
    else:
        x, weight, bias, mean, var, _momentum, eps = bn.args[:7]
    mean_t, var_t = attr_value(gm, mean), attr_value(gm, var)
    check(mean_t is not None and var_t is not None, "running statistics are not constants")
    channels = mean_t.numel()
    gamma = attr_value(gm, weight) if weight is not None else torch.ones(channels)
    beta = attr_value(gm, bias) if bias is not None else torch.zeros(channels)
    check(gamma is not None and beta is not None, "affine parameters are not constants")
    scale = gamma.double() / torch.sqrt(var_t.double() + eps)
    return scale, beta.double() - scale * mean_t.double()


def _bn_output(bn: torch.fx.Node) -> torch.fx.Node:
    """The node carrying the normalized tensor (the BN itself, or its ``getitem(0)``)."""
    if bn.target is BATCH_NORM:
        return bn
    users = list(bn.users)
    check(len(users) == 1 and users[0].args[1] == 0, "uses batch norm statistics outputs")
    return users[0]


def _layer_params(gm, layer: torch.fx.Node) -> tuple[torch.Tensor, torch.Tensor | None]:
    weight = attr_value(gm, layer.args[1])
    check(weight is not None, "weight is not a constant")
    bias_node = layer.args[2] if len(layer.args) > 2 else None
    bias = attr_value(gm, bias_node) if bias_node is not None else None
    check(bias_node is None or bias is not None, "bias is not a constant")
    return weight, bias


@dataclass
class Fold:
    """New weight and bias for ``layer``; then ``bn``'s output is rewired around it."""

    bn: torch.fx.Node
    out: torch.fx.Node  # the normalized tensor
    layer: torch.fx.Node
    weight: torch.Tensor
    bias: torch.Tensor
    into_producer: bool


def _into_producer(gm, bn: torch.fx.Node) -> Fold:
    """``BN(W x + b)``: scale the rows of the conv/linear before the BN."""
    layer = bn.args[0]
    check(is_call(layer, CONV_INT_PADDING + (LINEAR,)), "input is not a conv or linear")
    check(len(layer.users) == 1, f"{layer.name} has other users")
    out = _bn_output(bn)
    scale, shift = _bn_affine(gm, bn)
    weight, bias = _layer_params(gm, layer)
    check(weight.shape[0] == scale.numel(), "channel count differs")
    if layer.target is LINEAR:
        val = layer.meta.get("val")
        check(val is not None and val.dim() == 2, "batch norm after a linear over more than [N, C]")
    new_weight = weight.double() * scale.reshape((-1,) + (1,) * (weight.dim() - 1))
    base = bias.double() if bias is not None else torch.zeros_like(scale)
    return Fold(bn, out, layer, new_weight, base * scale + shift, into_producer=True)


def _into_consumer(gm, bn: torch.fx.Node) -> Fold:
    """``W BN(x) + b``: scale the input channels of the unpadded conv/linear after the BN."""
    out = _bn_output(bn)
    users = list(out.users)
    check(len(users) == 1, "normalized tensor has several users")
    layer = users[0]
    check(is_call(layer, CONV_INT_PADDING + (LINEAR,)), "followed by neither a conv nor a linear")
    weight, bias = _layer_params(gm, layer)
    scale, shift = _bn_affine(gm, bn)
    if layer.target in CONV_INT_PADDING:
        padding = layer.args[4] if len(layer.args) > 4 else 0
        groups = layer.args[6] if len(layer.args) > 6 else 1
        check(all(p == 0 for p in (padding if isinstance(padding, (list, tuple)) else [padding])),
              "next conv pads with zeros, which a folded shift would change")
        check(groups == 1, "next conv is grouped")
        check(weight.shape[1] == scale.numel(), "channel count differs")
        shape = (1, -1) + (1,) * (weight.dim() - 2)
        new_weight = weight.double() * scale.reshape(shape)
        extra = (weight.double() * shift.reshape(shape)).sum(dim=tuple(range(1, weight.dim())))
    else:
        check(weight.shape[1] == scale.numel(), "feature count differs")
        check(bn.args[0].meta.get("val") is not None and bn.args[0].meta["val"].dim() == 2,
              "linear after batch norm over more than [N, C]")
        new_weight = weight.double() * scale.reshape(1, -1)
        extra = weight.double() @ shift
    base = bias.double() if bias is not None else torch.zeros(weight.shape[0], dtype=torch.float64)
    return Fold(bn, out, layer, new_weight, base + extra, into_producer=False)


class FoldBatchnormPass(GraphPass):
    id = "fold_batchnorm"
    description = "fold inference batch norm into adjacent conv/linear weights"

    def candidates(self, gm):
        return call_nodes(gm, (BATCH_NORM, BATCH_NORM_NO_TRAINING))

    def match(self, gm, bn: torch.fx.Node) -> Fold:
        """Fold into the layer before the BN, else into the one after; refuse with both reasons."""
        try:
            return _into_producer(gm, bn)
        except Mismatch as before:
            reason_before = str(before)
        try:
            return _into_consumer(gm, bn)
        except Mismatch as after:
            raise Mismatch(f"{reason_before}; {after}") from None

    def rewrite(self, gm, fold: Fold, result: PassResult) -> None:
        layer = fold.layer
        args = list(layer.args) + [None] * (3 - len(layer.args))
        args[1] = add_constant(gm, layer, "bnfold_weight", fold.weight.to(torch.float32))
        args[2] = add_constant(gm, layer, "bnfold_bias", fold.bias.to(torch.float32))
        layer.args = tuple(args)
        if fold.into_producer:
            fold.out.replace_all_uses_with(layer)
        else:
            layer.replace_input_with(fold.out, fold.bn.args[0])
