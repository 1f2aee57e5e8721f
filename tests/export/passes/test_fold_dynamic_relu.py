"""fold_dynamic_relu: the algebra, Mobile-Former's 16 DY-ReLUs, the static PReLU case, near misses.

The other spellings of the max (``where``, ``relu``) belong to the study: test_dynamic_relu_study_forms.py.
"""

from __future__ import annotations

import operator

import pytest
import torch
import torch.nn as nn

from mobexport.export.passes.fold_batchnorm import FoldBatchnormPass
from mobexport.export.passes.fold_dynamic_relu import FoldDynamicReluPass
from mobexport.export.passes.manager import rewrite
from mobexport.models.mobile_former import DynamicReLU, DynamicReLUHyper

from .conftest import (Fires, Refuses, aten, assert_same_outputs, check_pass, export_dynamic, images, op_counts,
                       outputs, reexport_dynamic, unused_attributes, zoo_module, zoo_program)

MAXIMUM = aten.maximum.default


def test_folded_hyper_function_algebra():
    """2 (hsigmoid(z) - 1/2) + 1 = clamp(z/3 + 1, 0, 2) and 2 (hsigmoid(z) - 1/2) = clamp(z/3, -1, 1)."""
    z = torch.linspace(-8, 8, 1001)
    h = nn.functional.hardsigmoid(z)
    torch.testing.assert_close((h - 0.5) * 2 + 1, torch.clamp(z / 3 + 1, 0, 2))
    torch.testing.assert_close((h - 0.5) * 2, torch.clamp(z / 3, -1, 1))


def slopes_of(gm):
    """For each DY-ReLU max (original or folded form), the ops that make its two slopes."""
    sites = []
    for n in gm.graph.nodes:
        if n.target is MAXIMUM and all(a.target is aten.mul.Tensor for a in n.args):
            sites.append(n)
    return sites


@pytest.fixture(scope="module")
def mobile_former():
    return zoo_module("mobile_former_26m", 96, dynamic=True)


def test_fires_on_mobile_former(mobile_former):
    import copy

    gm = copy.deepcopy(mobile_former)
    counts = op_counts(gm)
    assert len(slopes_of(gm)) == 16 == counts[aten.chunk.default]
    unused = set(unused_attributes(gm))

    # hsigmoid, chunk, 2 sub, 2 mul and an add per DY-ReLU became 2 Linear + 2 clamp; the max stays
    check_pass(FoldDynamicReluPass, Fires(gm, images((96, 128, 160)), rewrites=16, ops={
        aten.hardsigmoid.default: counts[aten.hardsigmoid.default] - 16, aten.chunk.default: 0, operator.getitem: 0,
        aten.sub.Tensor: 0, aten.clamp.default: 32, aten.linear.default: counts[aten.linear.default] + 16,
        MAXIMUM: counts[MAXIMUM],
    }, details={"hyper_functions_folded": 16, "static": 0}))

    bounds = sorted(tuple(n.args[1:3]) for n in gm.graph.nodes if n.target is aten.clamp.default)
    assert bounds == [(-1.0, 1.0)] * 16 + [(0.0, 2.0)] * 16
    assert len(slopes_of(gm)) == 16
    assert set(unused_attributes(gm)) <= unused


def test_new_nodes_carry_shapes(mobile_former):
    """Every node the fold adds has ``meta["val"]``: the next pass reads shapes from it."""
    import copy

    gm = copy.deepcopy(mobile_former)
    FoldDynamicReluPass().run(gm)
    assert [n.name for n in gm.graph.nodes if n.op == "call_function" and "val" not in n.meta] == []


class DyReluBlock(nn.Module):
    """conv -> DY-ReLU -> grouped conv, the slopes from the pooled input (dynamic) or a parameter (static)."""

    def __init__(self, static: bool = False, hyper: nn.Module | None = None, spread: float = 0.3):
        super().__init__()
        self.static = static
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.token = nn.Linear(3, 32)
        self.constant_token = nn.Parameter(torch.randn(1, 32))
        self.hyper = hyper or DynamicReLUHyper(32, 16)
        self.act = DynamicReLU()
        self.out = nn.Conv2d(16, 8, 3, padding=1, groups=2)
        with torch.no_grad():
            for p in self.hyper.parameters():
                p.normal_(0, spread)

    def forward(self, x):
        t = self.constant_token if self.static else self.token(x.mean((2, 3)))
        return self.out(self.act(self.conv(x), self.hyper(t)))


def test_dynamic_block_outputs_and_dynamic_shapes():
    gm = export_dynamic(DyReluBlock(), torch.randn(2, 3, 32, 32), multiple=8, low=8, high=64)
    inputs = images((16, 32, 40), batch=2)
    before = outputs(gm, inputs)
    check_pass(FoldDynamicReluPass, Fires(gm, inputs, rewrites=1, details={"hyper_functions_folded": 1}))
    program = reexport_dynamic(gm, inputs[1], multiple=8, low=8, high=64)
    assert_same_outputs(before, outputs(program.module(), inputs))


def test_static_slopes_become_a_prelu_with_the_scale_in_the_next_conv():
    torch.manual_seed(1)
    block = DyReluBlock(static=True, spread=0.1)
    gm = export_dynamic(block, torch.randn(2, 3, 32, 32), multiple=8, low=8, high=64)
    with torch.no_grad():
        h1, h2 = block.hyper(block.constant_token).chunk(2, dim=1)
        assert bool((torch.maximum(2 * h1, 2 * h2 - 1) > 0).all())  # the PReLU case
    inputs = images((16, 32, 40), batch=2)
    before = outputs(gm, inputs)

    result = FoldDynamicReluPass().run(gm)

    assert result.rewrites == 1 and result.details["static"] == 1
    counts = op_counts(gm)
    assert counts[aten.prelu.default] == 1
    for gone in (MAXIMUM, aten.mul.Tensor, aten.linear.default, aten.hardsigmoid.default):
        assert counts[gone] == 0, gone
    (prelu,) = [n for n in gm.graph.nodes if n.target is aten.prelu.default]
    assert [u.target for u in prelu.users] == [aten.conv2d.default]  # the scale p went into the conv
    assert_same_outputs(before, outputs(gm, inputs))
    assert FoldDynamicReluPass().run(gm).rewrites == 0
    program = reexport_dynamic(gm, inputs[1], multiple=8, low=8, high=64)
    assert_same_outputs(before, outputs(program.module(), inputs))


def test_static_slopes_with_a_non_positive_channel_stay_exact():
    """p = max(a1, a2) <= 0 somewhere: no PReLU (it would divide by p), a constant n x + (p - n) relu(x)."""
    block = DyReluBlock(static=True, spread=0.1)
    with torch.no_grad():  # channel 0: a1 = clamp(z1/3 + 1, 0, 2) = 0 and a2 = -1
        block.hyper.hyper[2].bias[0] = -100.0
        block.hyper.hyper[2].bias[16] = -100.0
    gm = export_dynamic(block, torch.randn(2, 3, 32, 32), multiple=8, low=8, high=64)
    inputs = images((16, 32, 40), batch=2)
    before = outputs(gm, inputs)
    result = FoldDynamicReluPass().run(gm)
    assert result.rewrites == 1 and result.details["static"] == 1
    counts = op_counts(gm)
    assert counts[aten.prelu.default] == counts[MAXIMUM] == counts[aten.linear.default] == 0
    assert counts[aten.relu.default] == 1
    assert_same_outputs(before, outputs(gm, inputs))


class SigmoidHyper(nn.Module):
    """A hyper-function with a sigmoid: nothing to fold into the Linear."""

    def __init__(self, token_dim, channels):
        super().__init__()
        self.hyper = nn.Sequential(nn.Linear(token_dim, 2 * channels), nn.Sigmoid())

    def forward(self, t):
        return self.hyper(t)[:, :, None, None]


def test_unfoldable_hyper_function_is_refused_with_the_reason():
    gm = export_dynamic(DyReluBlock(hyper=SigmoidHyper(32, 16)), torch.randn(2, 3, 32, 32))
    (result,) = check_pass(FoldDynamicReluPass, Refuses(gm, images((16, 32, 40), batch=2),
                                                        "not a scalar step, clamp, slice or unsqueeze"))
    assert len(result.skipped) == 1 and "hyper-function not folded" in result.skipped[0].reason
    assert "sigmoid" in result.skipped[0].reason


class ProductReused(nn.Module):
    def forward(self, x):
        a1 = torch.sigmoid(x.mean((2, 3), keepdim=True))
        product = x * a1
        return torch.maximum(product, x * -a1) + product


class SpatialSlopes(nn.Module):
    def forward(self, x):
        a1, a2 = torch.sigmoid(x), torch.tanh(x)
        return torch.maximum(x * a1, x * a2)


class LeakyMax(nn.Module):
    def forward(self, x):
        return torch.maximum(x * 0.1, x * 1.0)


@pytest.mark.parametrize("module, reason", [
    (ProductReused(), "has other users"),
    (SpatialSlopes(), "not one per channel"),
    (LeakyMax(), "Python scalar"),
], ids=["product-with-other-users", "spatially-varying-slopes", "scalar-slopes"])
def test_refuses_near_misses_with_the_reason(module, reason):
    x = torch.randn(2, 8, 16, 16)
    gm = export_dynamic(module, x, multiple=8, low=8, high=32)
    (result,) = check_pass(FoldDynamicReluPass, Refuses(gm, [x], reason))
    assert len(result.skipped) == 1


@pytest.mark.slow
def test_mobile_former_rewrite_keeps_dynamic_shapes():
    traced = zoo_program("mobile_former_26m", 96, dynamic=True)
    inputs = images((96, 128, 224))
    before = outputs(traced.program.module(), inputs)

    rewritten, results = rewrite(traced, [FoldBatchnormPass(), FoldDynamicReluPass()], verify_resolutions=[96, 128])

    assert [r.rewrites for r in results] == [32, 16]
    assert rewritten.dynamic and (rewritten.min_resolution, rewritten.max_resolution) == (96, 1024)
    assert_same_outputs(before, outputs(rewritten.program.module(), inputs))
