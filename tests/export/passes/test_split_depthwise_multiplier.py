"""split_depthwise_multiplier: a depthwise conv with m outputs per channel becomes m plain depthwise convs."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from mobexport.export.passes import resolve
from mobexport.export.passes.fold_batchnorm import FoldBatchnormPass
from mobexport.export.passes.split_depthwise_multiplier import SplitDepthwiseMultiplierPass, multiplier

from .conftest import (Fires, Refuses, aten, check_pass, assert_same_outputs, export_dynamic, export_static, images, op_counts, outputs,
                       reexport_dynamic, signature, unused_attributes, zoo_module)

CONVS = (aten.conv2d.default, aten.conv2d.padding)


def multiplier_convs(gm) -> dict[str, int]:
    return {n.name: multiplier(gm, n) for n in gm.graph.nodes if n.target in CONVS and multiplier(gm, n) > 1}


def test_runs_after_fold_batchnorm_in_the_default_pipeline():
    ids = [p.id for p in resolve("default")]
    assert ids.index("fold_batchnorm") < ids.index("split_depthwise_multiplier")
    assert SplitDepthwiseMultiplierPass.after == ("fold_batchnorm",)


def test_splits_every_multiplier_conv_of_mobile_former():
    gm = zoo_module("mobile_former_26m", 96, dynamic=True)
    x = images((96, 128, 160))
    before = outputs(gm, x)
    sig = signature(gm)
    FoldBatchnormPass().run(gm)
    found = multiplier_convs(gm)
    # the stem block's dw 8 -> 24 and the dw3x3 s2 that opens each of the three D blocks, plus their second dw
    assert sorted(found.values()) == sorted([3, 6, 4, 6, 4, 6, 4]), found
    convs = op_counts(gm)[aten.conv2d.default]
    unused = set(unused_attributes(gm))

    result = SplitDepthwiseMultiplierPass().run(gm)

    assert result.rewrites == len(found) and result.skipped == []
    assert result.details["convs_split"] == found
    counts = op_counts(gm)
    assert counts[aten.conv2d.default] == convs + sum(m - 1 for m in found.values())
    assert counts[aten.stack.default] == len(found)
    assert multiplier_convs(gm) == {}
    assert set(unused_attributes(gm)) <= unused  # the split weights replaced the originals
    assert signature(gm) == sig
    assert_same_outputs(before, outputs(gm, x))
    assert SplitDepthwiseMultiplierPass().run(gm).rewrites == 0


class Widening(nn.Module):
    """A depthwise conv with ``m`` filters per input channel, then a pointwise conv that mixes them."""

    def __init__(self, channels=4, m=3, kernel=3, stride=1, padding=1, dilation=1, bias=True):
        super().__init__()
        self.dw = nn.Conv2d(channels, m * channels, kernel, stride, padding, dilation, groups=channels, bias=bias)
        self.pw = nn.Conv2d(m * channels, 5, 1)

    def forward(self, x):
        return self.pw(torch.relu(self.dw(x)))


@pytest.mark.parametrize("module", [
    Widening(), Widening(m=2, stride=2), Widening(kernel=5, padding=2, dilation=1, bias=False),
    Widening(dilation=2, padding=2), Widening(padding="same"), Widening(m=6, kernel=1, padding=0),
], ids=["m3", "m2-stride2", "5x5-no-bias", "dilated", "same-padding", "1x1"])
def test_keeps_outputs_for_every_form_of_the_conv(module):
    x = torch.randn(1, 4, 16, 16)
    gm = export_static(module, x)
    inputs = [x, torch.randn(1, 4, 16, 16)]
    before = outputs(gm, inputs)
    result = SplitDepthwiseMultiplierPass().run(gm)
    assert result.rewrites == 1
    assert_same_outputs(before, outputs(gm, inputs))
    assert all(multiplier(gm, n) == 1 for n in gm.graph.nodes if n.target in CONVS)


def test_dynamic_shapes_survive_the_split():
    module = Widening(m=2, stride=2)
    gm = export_dynamic(module, torch.randn(1, 4, 32, 32), multiple=8, low=16, high=64)
    inputs = images((16, 40, 64), channels=4)
    before = outputs(gm, inputs)
    check_pass(SplitDepthwiseMultiplierPass, Fires(gm, inputs, rewrites=1, details={"convs_split": {"conv2d": 2}}))
    assert all("val" in n.meta for n in gm.graph.nodes if n.op == "call_function")  # the builder's shapes
    program = reexport_dynamic(gm, inputs[1], multiple=8, low=16, high=64)
    assert_same_outputs(before, outputs(program.module(), inputs))


class ComputedWeight(nn.Module):
    """A depthwise widening conv whose weight (or bias) is computed from an input: nothing constant to split."""

    def __init__(self, computed: str):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(8, 1, 3, 3))
        self.bias = nn.Parameter(torch.randn(8))
        self.computed = computed

    def forward(self, x):
        gain = x.mean()
        weight = self.weight * gain if self.computed == "weight" else self.weight
        bias = self.bias * gain if self.computed == "bias" else self.bias
        return torch.nn.functional.conv2d(x, weight, bias, padding=1, groups=4)


@pytest.mark.parametrize("computed", ["weight", "bias"])
def test_refuses_a_computed_weight_or_bias_with_the_reason(computed):
    x = torch.randn(1, 4, 8, 8)
    gm = export_static(ComputedWeight(computed), x)
    before = outputs(gm, [x])
    (result,) = check_pass(SplitDepthwiseMultiplierPass, Refuses(gm, [x], f"conv {computed} is not a constant"))
    assert len(result.skipped) == 1
    torch.testing.assert_close(before[0], outputs(gm, [x])[0], rtol=0, atol=0)


@pytest.mark.parametrize("conv", [
    nn.Conv2d(8, 8, 3, padding=1, groups=8),    # plain depthwise: already the fast form
    nn.Conv2d(8, 16, 3, padding=1, groups=4),   # grouped, two input channels per group
    nn.Conv2d(8, 16, 3, padding=1),             # dense
], ids=["depthwise-m1", "grouped", "dense"])
def test_other_convs_are_not_candidates(conv):
    x = torch.randn(1, 8, 8, 8)
    gm = export_static(conv, x)
    result = SplitDepthwiseMultiplierPass().run(gm)
    assert result.rewrites == 0 and result.skipped == []
