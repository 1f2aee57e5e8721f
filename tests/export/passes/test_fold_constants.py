"""fold_constants: fires on constant subgraphs, refuses an oversized result with the reason, leaves inputs' ops alone."""

from __future__ import annotations

import torch
import torch.nn as nn

from mobexport.export.passes import resolve
from mobexport.export.passes.fold_constants import MAX_FOLDED_ELEMENTS, FoldConstantsPass

from .conftest import Fires, Refuses, aten, check_pass, export_dynamic, export_static, images, op_counts


class ConstantGate(nn.Module):
    """``sigmoid(W g + b)`` of a parameter ``g`` scales the features: three ops that read only constants."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.g = nn.Parameter(torch.randn(1, 4))
        self.gate = nn.Linear(4, 8)

    def forward(self, x):
        return self.conv(x).mean((2, 3)) * torch.sigmoid(self.gate(self.g) * 2.0)


class HugeRepeat(nn.Module):
    """A constant repeated past the size limit: cheaper to compute at run time than to store."""

    def __init__(self):
        super().__init__()
        self.register_buffer("one", torch.full((1, 1), 0.5))

    def forward(self, x):
        return x.mean() * self.one.repeat(1, MAX_FOLDED_ELEMENTS + 1).sum()


def test_runs_last_in_the_default_pipeline():
    assert resolve("default")[-1].id == "fold_constants"
    assert "attention_to_bmm" in FoldConstantsPass.after


def test_folds_a_constant_gate_and_keeps_the_rest():
    torch.manual_seed(0)
    gm = export_dynamic(ConstantGate().eval(), torch.randn(1, 3, 32, 32), multiple=8, low=16, high=64)
    convs = op_counts(gm)[aten.conv2d.default]
    check_pass(FoldConstantsPass, Fires(gm, images((16, 32, 48)), rewrites=3, ops={
        aten.linear.default: 0, aten.sigmoid.default: 0, aten.conv2d.default: convs}))
    assert not any(n.op == "get_attr" and n.target in ("g", "gate.weight", "gate.bias") for n in gm.graph.nodes)


def test_refuses_an_oversized_constant_with_the_reason():
    x = torch.randn(1, 3, 8, 8)
    gm = export_static(HugeRepeat(), x)
    assert op_counts(gm)[aten.repeat.default] == 1
    check_pass(FoldConstantsPass, Refuses(gm, [x], "computed at run time"))
