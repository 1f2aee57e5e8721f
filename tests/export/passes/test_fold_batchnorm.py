"""fold_batchnorm: fires on the zoo, refuses near misses with the reason, keeps outputs and signature."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from mobexport.export.passes.fold_batchnorm import FoldBatchnormPass
from mobexport.export.passes.manager import rewrite

from .conftest import (Fires, Refuses, aten, check_pass, assert_same_outputs, export_dynamic, export_static, images, op_counts, outputs,
                       randomize_batchnorm, reexport_dynamic, signature, zoo_module, zoo_program)

BN = aten.batch_norm.default


@pytest.mark.parametrize("name, resolution, others", [
    ("mobilenet_v3_small_100", 96, (128, 160)),
    ("mobile_former_26m", 96, (128, 160)),
])
def test_folds_every_batch_norm_of_conv_nets(name, resolution, others):
    gm = zoo_module(name, resolution, dynamic=True)
    bns = op_counts(gm)[BN]
    assert bns > 20
    check_pass(FoldBatchnormPass, Fires(gm, images((resolution, *others)), rewrites=bns, ops={BN: 0}))


def test_cmt_keeps_only_batch_norms_before_padded_convs():
    """CMT's conv -> BN and BN -> 1x1 chains fold; a BN feeding a zero-padded conv cannot."""
    gm = zoo_module("cmt_ti", 64, dynamic=False)
    bns = op_counts(gm)[BN]
    before = outputs(gm, images((64,)))

    result = FoldBatchnormPass().run(gm)

    remaining = [n for n in gm.graph.nodes if n.target is BN]
    # stem_norm1/2 feed padded 3x3 convs; each IRFFN's conv1 BN feeds its padded depthwise conv
    assert len(remaining) == 2 + 16 == len(result.skipped)
    assert result.rewrites == bns - len(remaining)
    assert all("pads with zeros" in s.reason or "several users" in s.reason for s in result.skipped)
    for bn in remaining:
        assert bn.args[0].target is aten.gelu.default
        assert any(u.target is aten.conv2d.default for u in bn.users)
    assert_same_outputs(before, outputs(gm, images((64,))))


class ActThenBnThenConv(nn.Module):
    """BN after an activation, before a conv of the given padding/groups."""

    def __init__(self, padding: int = 1, groups: int = 1, kernel: int = 3):
        super().__init__()
        self.bn = nn.BatchNorm2d(8)
        self.conv = nn.Conv2d(8, 8, kernel, padding=padding, groups=groups)

    def forward(self, x):
        return self.conv(self.bn(torch.relu(x)))


class ConvBnTwoUsers(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 1)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


class ConvBn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


@pytest.mark.parametrize("model, training, reason", [
    (ActThenBnThenConv(padding=1), False, "next conv pads with zeros"),
    (ActThenBnThenConv(padding=0, groups=2, kernel=1), False, "next conv is grouped"),
    (ConvBnTwoUsers(), False, "has other users"),
    (ConvBn(), True, "batch norm in training mode"),
], ids=["padded-conv-after-bn", "grouped-conv-after-bn", "conv-with-other-users", "training-mode"])
def test_refuses_near_misses_with_the_reason(model, training, reason):
    randomize_batchnorm(model)
    x = torch.randn(2, 8, 16, 16)
    if training:
        with torch.no_grad():
            gm = torch.export.export(model.train(), (x,), strict=False).module()
    else:
        gm = export_static(model, x)
        check_pass(FoldBatchnormPass, Refuses(gm, [x], reason))
    result = FoldBatchnormPass().run(gm)
    assert result.rewrites == 0
    assert len(result.skipped) == 1 and reason in result.skipped[0].reason, result.skipped
    assert op_counts(gm)[aten.batch_norm.default] == 1


class SmallConvNet(nn.Module):
    """conv-BN-act, a BN -> 1x1 conv, a linear -> BN1d head: every fold direction, in 3 channels."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.Hardswish())
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, 1, 1, groups=16), nn.BatchNorm2d(16), nn.ReLU())
        self.pre = nn.BatchNorm2d(16)
        self.pw = nn.Conv2d(16, 24, 1)
        self.fc = nn.Linear(24, 10)
        self.fc_bn = nn.BatchNorm1d(10)

    def forward(self, x):
        y = self.pw(self.pre(torch.relu(self.dw(self.stem(x)))))
        return self.fc_bn(self.fc(y.mean((2, 3))))


def test_signature_and_dynamic_shapes_survive():
    model = randomize_batchnorm(SmallConvNet())
    gm = export_dynamic(model, torch.randn(1, 3, 32, 32), multiple=8, low=16, high=64)
    sig = signature(gm)
    inputs = images((16, 32, 48))
    before = outputs(gm, inputs)

    result = FoldBatchnormPass().run(gm)

    assert result.rewrites == 4 and op_counts(gm)[aten.batch_norm.default] == 0
    assert signature(gm) == sig
    assert_same_outputs(before, outputs(gm, inputs))
    program = reexport_dynamic(gm, inputs[1], multiple=8, low=16, high=64)
    assert_same_outputs(before, outputs(program.module(), inputs))


@pytest.mark.slow
def test_rewrite_keeps_the_zoo_programs_dynamic_range():
    traced = zoo_program("mobilenet_v3_small_100", 96, dynamic=True)
    inputs = images((96, 128, 160))
    before = outputs(traced.program.module(), inputs)

    rewritten, results = rewrite(traced, [FoldBatchnormPass()])

    assert rewritten.dynamic and (rewritten.min_resolution, rewritten.max_resolution) == (96, 1024)
    assert results[0].rewrites > 20
    assert len(rewritten.program.graph_signature.user_inputs) == 1
    assert_same_outputs(before, outputs(rewritten.program.module(), inputs))
