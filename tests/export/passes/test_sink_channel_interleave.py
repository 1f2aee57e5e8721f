"""sink_channel_interleave: the split's channel interleave becomes a concat; the permutation moves into weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from mobexport.export.passes import resolve
from mobexport.export.passes.manager import run_passes
from mobexport.export.passes.sink_channel_interleave import SinkChannelInterleavePass
from mobexport.export.passes.split_depthwise_multiplier import SplitDepthwiseMultiplierPass

from .conftest import Fires, Refuses, aten, check_pass, export_dynamic, export_static, images, op_counts, zoo_module


def split(gm):
    """``gm`` after the split that writes the interleaves this pass removes."""
    assert SplitDepthwiseMultiplierPass().run(gm).rewrites >= 1
    return gm


def test_runs_after_the_split_and_the_dynamic_relu_fold():
    ids = [p.id for p in resolve("default")]
    assert ids.index("split_depthwise_multiplier") < ids.index("sink_channel_interleave")
    assert ids.index("fold_dynamic_relu") < ids.index("sink_channel_interleave")


def test_sinks_every_interleave_of_mobile_former():
    gm = zoo_module("mobile_former_52m", 96, dynamic=True)
    ids = [p.id for p in resolve("default")]
    run_passes(gm, resolve(",".join(ids[:ids.index("sink_channel_interleave")])))
    counts = op_counts(gm)
    assert counts[aten.stack.default] == 7  # the stem's widening dw and the two of each D block

    (result,) = check_pass(SinkChannelInterleavePass, Fires(gm, images((96, 128, 160)), rewrites=7, ops={
        aten.stack.default: 0, aten.cat.default: counts[aten.cat.default] + 7}))
    # each fed a Dynamic ReLU (slopes from a Linear, whose rows were permuted) and then a 1x1 conv
    assert len(result.details["interleaves_sunk"]) == 7


def test_onnx_leaves_it_out_of_its_default_pipeline():
    from mobexport.export.targets import get_target

    assert "sink_channel_interleave" in [p.id for p in resolve("default")]
    assert "sink_channel_interleave" not in [p.id for p in resolve("default", get_target("onnx").slower_passes)]
    assert [p.id for p in resolve("sink_channel_interleave", get_target("onnx").slower_passes)] == ["sink_channel_interleave"]
    assert get_target("executorch").slower_passes == ()


class Widened(nn.Module):
    """A widening depthwise conv, per-channel work on its output, then a pointwise conv that mixes channels."""

    def __init__(self, tail: str = "relu", m: int = 3, channels: int = 4):
        super().__init__()
        wide = m * channels
        self.dw = nn.Conv2d(channels, wide, 3, padding=1, groups=channels)
        self.pw = nn.Conv2d(wide, 5, 1)
        self.scale = nn.Parameter(torch.randn(1, wide, 1, 1))
        self.shift = nn.Parameter(torch.randn(wide, 1, 1))
        self.hyper = nn.Linear(channels, 2 * wide)
        self.other = nn.Conv2d(channels, wide, 1)
        self.tail = tail

    def forward(self, x):
        y = self.dw(x)
        if self.tail == "relu":
            y = torch.relu(y)
        elif self.tail == "affine":  # constant per-channel operands on both sides, a scalar, then a clamp
            y = torch.clamp(self.scale * y + self.shift - 0.5, -1.0, 3.0)
        elif self.tail == "dynamic_relu":  # slopes from a Linear over the pooled input
            a = torch.clamp(self.hyper(x.mean((2, 3))), -1.0, 2.0)[:, :, None, None]
            a1, a2 = a.chunk(2, dim=1)
            y = torch.maximum(y * a1, y * a2)
        elif self.tail.startswith("shuffle"):  # channel shuffle in g groups, as Mobile-Former-26M's release has
            groups = int(self.tail.removeprefix("shuffle"))
            y = torch.relu(y.unflatten(1, (groups, -1)).transpose(1, 2).flatten(1, 2))
        elif self.tail == "output":
            return self.pw(y), y
        elif self.tail == "grouped":
            return nn.functional.conv2d(y, self.pw.weight.new_ones(y.shape[1], 1, 3, 3), padding=1, groups=y.shape[1])
        elif self.tail == "pool":
            y = nn.functional.avg_pool2d(y, 2)
        elif self.tail == "residual":
            y = y + self.other(x)
        elif self.tail == "shared":  # a slope the rest of the graph also reads
            a = self.hyper(x.mean((2, 3)))[:, :12, None, None]
            return self.pw(y * a), a
        return self.pw(y)


def widened(tail: str, dynamic: bool = True):
    x = torch.randn(1, 4, 32, 32)
    gm = export_dynamic(Widened(tail), x, multiple=8, low=16, high=64) if dynamic else export_static(Widened(tail), x)
    return split(gm)


INPUTS = images((16, 40, 64), channels=4)


@pytest.mark.parametrize("tail", ["relu", "affine"])
def test_fires_through_per_channel_ops(tail):
    check_pass(SinkChannelInterleavePass, Fires(widened(tail), INPUTS, rewrites=1,
                                                ops={aten.stack.default: 0, aten.cat.default: 1}))


def test_permutes_the_rows_of_the_linear_that_makes_a_slope():
    # the Dynamic ReLU spelling before fold_dynamic_relu: a chunk of one Linear is not one Linear's rows
    check_pass(SinkChannelInterleavePass, Refuses(widened("dynamic_relu"), INPUTS, "not a constant or made from a linear"))
    gm = widened("dynamic_relu")
    run_passes(gm, resolve("fold_dynamic_relu"))  # one Linear per slope, the form the default pipeline gives
    layers = [n for n in gm.graph.nodes if n.target is aten.linear.default]
    weights = {n.name: n.args[1].target for n in layers}
    check_pass(SinkChannelInterleavePass, Fires(gm, INPUTS, rewrites=1, ops={aten.stack.default: 0}))
    assert all(n.args[1].target != weights[n.name] for n in layers), "the slopes' Linear rows were not permuted"


def test_keeps_the_static_program_equal():
    gm = widened("affine", dynamic=False)
    check_pass(SinkChannelInterleavePass, Fires(gm, [torch.randn(1, 4, 32, 32)], rewrites=1, one_size=True))


@pytest.mark.parametrize("tail, reason", [
    ("output", "is a graph output"),
    ("grouped", "is a grouped conv"),
    ("pool", "is not per-channel"),
    ("residual", "which is not per-channel"),
    ("shared", "is also used elsewhere"),
    ("shuffle4", "is not per-channel"),  # cancel_interleave_shuffle's pattern, not this pass's
])
def test_refuses_what_it_cannot_permute(tail, reason):
    check_pass(SinkChannelInterleavePass, Refuses(widened(tail), INPUTS, reason))
