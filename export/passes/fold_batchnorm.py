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

import torch
import torch.fx

from .base import GraphPass, Mismatch, PassResult, add_constant, attr_value, check, finalize
from .registry import register_pass

aten = torch.ops.aten

BATCH_NORM = aten.batch_norm.default
NO_TRAINING_BN = aten._native_batch_norm_legit_no_training.default
CONVS = (aten.conv2d.default, aten.conv1d.default)
LINEAR = aten.linear.default


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


def _is_bn(node: torch.fx.Node) -> bool:
    return node.op == "call_function" and node.target in (BATCH_NORM, NO_TRAINING_BN)


def _layer_params(gm, layer: torch.fx.Node) -> tuple[torch.Tensor, torch.Tensor | None]:
    weight = attr_value(gm, layer.args[1])
    check(weight is not None, "weight is not a constant")
    bias_node = layer.args[2] if len(layer.args) > 2 else None
    bias = attr_value(gm, bias_node) if bias_node is not None else None
    check(bias_node is None or bias is not None, "bias is not a constant")
    return weight, bias


def _replace_params(gm, layer: torch.fx.Node, weight: torch.Tensor, bias: torch.Tensor, stem: str) -> None:
    w_node = add_constant(gm, layer, f"{stem}_weight", weight.to(torch.float32))
    b_node = add_constant(gm, layer, f"{stem}_bias", bias.to(torch.float32))
    args = list(layer.args)
    while len(args) < 3:
        args.append(None)
    args[1], args[2] = w_node, b_node
    layer.args = tuple(args)


@register_pass
class FoldBatchnormPass(GraphPass):
    id = "fold_batchnorm"
    description = "fold inference batch norm into adjacent conv/linear weights"

    def run(self, gm: torch.fx.GraphModule) -> PassResult:
        result = PassResult(self.id)
        for bn in [n for n in gm.graph.nodes if _is_bn(n)]:
            try:
                self._fold_into_producer(gm, bn)
                result.rewrites += 1
                continue
            except Mismatch as before:
                reason_before = str(before)
            try:
                self._fold_into_consumer(gm, bn)
                result.rewrites += 1
            except Mismatch as after:
                result.skip(bn, f"{reason_before}; {after}")
        if result.changed:
            finalize(gm)
        return result

    def _fold_into_producer(self, gm, bn: torch.fx.Node) -> None:
        layer = bn.args[0]
        check(isinstance(layer, torch.fx.Node) and layer.op == "call_function"
              and (layer.target in CONVS or layer.target is LINEAR), "input is not a conv or linear")
        check(len(layer.users) == 1, f"{layer.name} has other users")
        out = _bn_output(bn)
        scale, shift = _bn_affine(gm, bn)
        weight, bias = _layer_params(gm, layer)
        check(weight.shape[0] == scale.numel(), "channel count differs")
        if layer.target is LINEAR:
            val = layer.meta.get("val")
            check(val is not None and val.dim() == 2, "batch norm after a linear over more than [N, C]")
        shape = (-1,) + (1,) * (weight.dim() - 1)
        new_weight = weight.double() * scale.reshape(shape)
        base = bias.double() if bias is not None else torch.zeros_like(scale)
        _replace_params(gm, layer, new_weight, base * scale + shift, "bnfold")
        out.replace_all_uses_with(layer)

    def _fold_into_consumer(self, gm, bn: torch.fx.Node) -> None:
        out = _bn_output(bn)
        users = list(out.users)
        check(len(users) == 1, "normalized tensor has several users")
        layer = users[0]
        check(layer.op == "call_function" and (layer.target in CONVS or layer.target is LINEAR),
              "followed by neither a conv nor a linear")
        weight, bias = _layer_params(gm, layer)
        scale, shift = _bn_affine(gm, bn)
        if layer.target in CONVS:
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
        _replace_params(gm, layer, new_weight, base + extra, "bnfold")
        layer.replace_input_with(out, bn.args[0])
