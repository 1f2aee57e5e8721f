"""fold_dynamic_relu: the algebra, Mobile-Former's 16 DY-ReLUs, the static PReLU case, near misses."""

from __future__ import annotations

import operator

import pytest
import torch
import torch.nn as nn

from mobexport.export.passes.fold_batchnorm import FoldBatchnormPass
from mobexport.export.passes.fold_dynamic_relu import DEFAULT_FORM, FORMS, FoldDynamicReluPass
from mobexport.export.passes.manager import rewrite
from mobexport.models.mobile_former import DynamicReLU, DynamicReLUHyper

from .conftest import (aten, assert_same_outputs, export_dynamic, images, op_counts, outputs, reexport_dynamic,
                       signature, unused_attributes, zoo_module, zoo_program)

MAXIMUM = aten.maximum.default


def test_max_of_products_identities():
    """max(a1 x, a2 x) = x where(x >= 0, p, n) = n x + (p - n) relu(x), slopes of any sign and order."""
    g = torch.Generator().manual_seed(0)
    a1 = torch.rand(4, 32, 1, 1, generator=g) * 2  # [0, 2], as DY-ReLU's a1
    a2 = torch.rand(4, 32, 1, 1, generator=g) * 2 - 1  # [-1, 1], as a2; crosses a1 in some channels
    a1[0, :4], a2[0, :4] = 0.0, torch.tensor([-1.0, 0.0, 0.5, 1.0]).reshape(4, 1, 1)  # saturated ends
    x = torch.randn(4, 32, 9, 9, generator=g)
    x[..., 0, 0] = 0.0
    assert ((a1 < a2).any() and (a1 > a2).any())
    p, n = torch.maximum(a1, a2), torch.minimum(a1, a2)
    reference = torch.maximum(a1 * x, a2 * x)
    torch.testing.assert_close(x * torch.where(x >= 0, p, n), reference, rtol=0, atol=0)
    torch.testing.assert_close(n * x + (p - n) * torch.relu(x), reference, rtol=1e-6, atol=1e-6)


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


@pytest.mark.parametrize("form", FORMS)
def test_fires_on_mobile_former(mobile_former, form):
    import copy

    gm = copy.deepcopy(mobile_former)
    counts = op_counts(gm)
    sites = len(slopes_of(gm))
    assert sites == 16 == counts[aten.chunk.default]
    inputs = images((96, 128, 160))
    before = outputs(gm, inputs)
    sig = signature(gm)
    unused = set(unused_attributes(gm))

    result = FoldDynamicReluPass(form).run(gm)

    after = op_counts(gm)
    assert result.rewrites == 16 and result.details["hyper_functions_folded"] == 16, result
    assert result.skipped == []
    # hsigmoid, chunk, 2 sub, 2 mul and an add per DY-ReLU became 2 Linear + 2 clamp
    assert after[aten.hardsigmoid.default] == counts[aten.hardsigmoid.default] - 16
    assert after[aten.chunk.default] == after[operator.getitem] == 0
    assert after[aten.sub.Tensor] == (16 if form == "relu" else 0)  # "relu" takes p - n on [B, C, 1, 1]
    assert after[aten.clamp.default] == 32
    assert after[aten.linear.default] == counts[aten.linear.default] + 16
    bounds = sorted(tuple(n.args[1:3]) for n in gm.graph.nodes if n.target is aten.clamp.default)
    assert bounds == [(-1.0, 1.0)] * 16 + [(0.0, 2.0)] * 16
    if form == "maximum":
        assert len(slopes_of(gm)) == 16 and after[MAXIMUM] == counts[MAXIMUM]
    else:
        # the max now runs on the [B, C, 1, 1] slopes only; no max of two full-size products is left
        assert slopes_of(gm) == [] and after[MAXIMUM] == after[aten.minimum.default] == 16
        assert after[aten.mul.Tensor] < counts[aten.mul.Tensor]
    assert signature(gm) == sig
    assert set(unused_attributes(gm)) <= unused
    assert_same_outputs(before, outputs(gm, inputs))
    second = FoldDynamicReluPass(form).run(gm)
    assert second.rewrites == 0 and second.skipped == []


def test_default_form_is_a_known_form():
    assert DEFAULT_FORM in FORMS
    with pytest.raises(ValueError, match="unknown DY-ReLU form"):
        FoldDynamicReluPass("fastest")


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


@pytest.mark.parametrize("form", FORMS)
def test_dynamic_block_outputs_and_dynamic_shapes(form):
    gm = export_dynamic(DyReluBlock(), torch.randn(2, 3, 32, 32), multiple=8, low=8, high=64)
    inputs = images((16, 32, 40), batch=2)
    before = outputs(gm, inputs)
    result = FoldDynamicReluPass(form).run(gm)
    assert result.rewrites == 1
    assert_same_outputs(before, outputs(gm, inputs))
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


def test_unfoldable_hyper_function_keeps_the_max_rewrite():
    gm = export_dynamic(DyReluBlock(hyper=SigmoidHyper(32, 16)), torch.randn(2, 3, 32, 32))
    inputs = images((16, 32, 40), batch=2)
    before = outputs(gm, inputs)

    folded_only = FoldDynamicReluPass("maximum").run(gm)
    assert folded_only.rewrites == 0
    assert len(folded_only.skipped) == 1 and "not a scalar step, clamp, slice or unsqueeze" in folded_only.skipped[0].reason

    result = FoldDynamicReluPass("where").run(gm)
    assert result.rewrites == 1 and result.details["hyper_functions_folded"] == 0
    assert "hyper-function not folded" in result.skipped[0].reason and "sigmoid" in result.skipped[0].reason
    assert_same_outputs(before, outputs(gm, inputs))


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
    before = outputs(gm, [x])
    result = FoldDynamicReluPass("where").run(gm)
    assert result.rewrites == 0
    assert len(result.skipped) == 1 and reason in result.skipped[0].reason, result.skipped
    assert_same_outputs(before, outputs(gm, [x]))


@pytest.mark.slow
@pytest.mark.parametrize("form", FORMS)
def test_mobile_former_rewrite_keeps_dynamic_shapes(form):
    traced = zoo_program("mobile_former_26m", 96, dynamic=True)
    inputs = images((96, 128, 224))
    before = outputs(traced.program.module(), inputs)

    rewritten, results = rewrite(traced, [FoldBatchnormPass(), FoldDynamicReluPass(form)], verify_resolutions=[96, 128])

    assert [r.rewrites for r in results] == [32, 16]
    assert rewritten.dynamic and (rewritten.min_resolution, rewritten.max_resolution) == (96, 1024)
    assert_same_outputs(before, outputs(rewritten.program.module(), inputs))
