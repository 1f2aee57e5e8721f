"""fuse_dwconv_ffn: CMT's x + dw(x) shortcuts go into the conv; near misses are refused with the reason."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from mobexport.export.passes import resolve
from mobexport.export.passes.fold_batchnorm import FoldBatchnormPass
from mobexport.export.passes.manager import rewrite
from mobexport.export.passes.fuse_dwconv_ffn import ACTIVATIONS, FuseDwconvFfnPass, conv_activation_pairs
from mobexport.models.cmt import Block

from .conftest import (Fires, Refuses, aten, check_pass, assert_same_outputs, export_dynamic, export_static, images, op_counts, outputs,
                       randomize_batchnorm, reexport_dynamic, signature, unused_attributes, zoo_module,
                       zoo_program)

CONV = aten.conv2d.default
ADD = aten.add.Tensor


def shortcut_adds(gm) -> int:
    """Adds of a conv's output and that conv's own input."""
    return sum(
        1 for n in gm.graph.nodes if n.target is ADD and any(
            isinstance(a, torch.fx.Node) and a.target is CONV and a.args[0] in n.args for a in n.args)
    )


def test_is_declared_after_fold_batchnorm():
    assert FuseDwconvFfnPass.after == ("fold_batchnorm",)
    assert [p.id for p in resolve("fuse_dwconv_ffn,fold_batchnorm")] == ["fold_batchnorm", "fuse_dwconv_ffn"]


def test_fires_on_every_cmt_shortcut():
    gm = zoo_module("cmt_ti", 64, dynamic=False)
    x = images((64,))
    before = outputs(gm, x)
    adds = op_counts(gm)[ADD]
    unused = set(unused_attributes(gm))
    blocks = 2 + 2 + 10 + 2
    assert shortcut_adds(gm) == 2 * blocks  # the LPU and the IRFFN's inner shortcut, per block

    FoldBatchnormPass().run(gm)
    (result,) = check_pass(FuseDwconvFfnPass, Fires(gm, x, rewrites=2 * blocks, ops={ADD: adds - 2 * blocks}, one_size=True))

    assert shortcut_adds(gm) == 0
    assert set(unused_attributes(gm)) <= unused  # merged weights replaced the old ones: no stale copies
    assert_same_outputs(before, outputs(gm, x))
    # The IRFFN's merged depthwise conv still feeds its GELU directly: a pair targets fuse.
    assert result.details["conv_activation_pairs"] >= blocks


def test_leaves_mobilenet_conv_act_chains_adjacent():
    """Every conv -> BN -> act becomes conv -> act, nothing between, and this pass finds nothing to merge."""
    gm = zoo_module("mobilenet_v3_small_100", 96, dynamic=True)
    conv_bn_act = sum(1 for n in gm.graph.nodes if n.target is aten.batch_norm.default
                      and n.args[0].target is CONV and len(n.users) == 1
                      and next(iter(n.users)).target in ACTIVATIONS)
    already_adjacent = conv_activation_pairs(gm)  # squeeze-excite convs and the head have no BN
    assert conv_bn_act > 20 and already_adjacent > 10

    FoldBatchnormPass().run(gm)
    result = FuseDwconvFfnPass().run(gm)

    assert result.rewrites == 0 and result.skipped == []
    assert result.details["conv_activation_pairs"] == already_adjacent + conv_bn_act


class MiniCmt(nn.Module):
    """Two real CMT blocks (LPU, LMHSA with K/V reduction, IRFFN) on a 3-channel input."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Conv2d(3, 16, 4, 4)
        self.blocks = nn.ModuleList([Block(16, 2, 2.0, 2), Block(16, 2, 2.0, 1)])

    def forward(self, x):
        x = self.embed(x)
        for block in self.blocks:
            x = block(x, torch.zeros(()))
        return x


def test_mini_cmt_outputs_signature_and_dynamic_shapes():
    model = randomize_batchnorm(MiniCmt())
    gm = export_dynamic(model, torch.randn(1, 3, 32, 32), multiple=8, low=16, high=64)
    sig = signature(gm)
    inputs = images((16, 32, 48))
    before = outputs(gm, inputs)

    results = [p.run(gm) for p in resolve("fold_batchnorm,fuse_dwconv_ffn")]

    assert results[1].rewrites == 4
    assert signature(gm) == sig
    assert_same_outputs(before, outputs(gm, inputs))
    assert FuseDwconvFfnPass().run(gm).rewrites == 0
    program = reexport_dynamic(gm, inputs[1], multiple=8, low=16, high=64)
    assert_same_outputs(before, outputs(program.module(), inputs))


class Shortcut(nn.Module):
    """``x + conv(x)`` with the conv's settings as given; ``extra`` also returns the conv output."""

    def __init__(self, channels=8, kernel=3, stride=1, padding=1, dilation=1, groups=8, alpha=1.0, extra=False):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel, stride, padding, dilation, groups)
        self.alpha, self.extra = alpha, extra

    def forward(self, x):
        y = self.conv(x)
        out = torch.add(x, y, alpha=self.alpha) if self.alpha != 1.0 else x + y
        return (out, y * 2) if self.extra else out


@pytest.mark.parametrize("module, size, reason", [
    (Shortcut(stride=2, padding=2), 3, "stride [2, 2]"),
    (Shortcut(kernel=2, padding="same"), 8, "even kernel 2x2"),
    (Shortcut(extra=True), 8, "has other users"),
    (Shortcut(groups=1), 8, "not depthwise"),
    (Shortcut(dilation=2, padding=2), 8, "dilation [2, 2]"),
    (Shortcut(alpha=0.5), 8, "alpha != 1"),
], ids=["strided", "even-kernel", "conv-with-other-users", "not-depthwise", "dilated", "scaled-add"])
def test_refuses_near_misses_with_the_reason(module, size, reason):
    x = torch.randn(1, 8, size, size)
    out = module(x)
    assert (out[0] if isinstance(out, tuple) else out).shape == x.shape  # a real graph, just not mergeable
    gm = export_static(module, x)
    before = outputs(gm, [x])
    (result,) = check_pass(FuseDwconvFfnPass, Refuses(gm, [x], reason))
    assert len(result.skipped) == 1
    after = outputs(gm, [x])
    for a, b in zip(before, after):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("kernel", [3, 5, (3, 5)])
def test_merges_any_odd_same_padded_depthwise_kernel(kernel):
    k = (kernel, kernel) if isinstance(kernel, int) else kernel
    module = Shortcut(kernel=k, padding=(k[0] // 2, k[1] // 2))
    x = torch.randn(2, 8, 12, 12)
    gm = export_static(module, x)
    before = outputs(gm, [x])
    assert FuseDwconvFfnPass().run(gm).rewrites == 1
    assert op_counts(gm)[ADD] == 0
    assert_same_outputs(before, outputs(gm, [x]))


@pytest.mark.slow
def test_cmt_rewrite_keeps_outputs_and_dynamic_shapes_across_resolutions():
    traced = zoo_program("cmt_ti", 64, dynamic=True)
    inputs = images((64, 96, 160))
    before = outputs(traced.program.module(), inputs)

    rewritten, results = rewrite(traced, resolve("fold_batchnorm,fuse_dwconv_ffn"), verify_resolutions=[64, 96])

    assert results[0].rewrites > 40 and len(results[0].skipped) == 18 and results[1].rewrites == 32
    assert rewritten.dynamic and rewritten.min_resolution == 64
    assert_same_outputs(before, outputs(rewritten.program.module(), inputs))
