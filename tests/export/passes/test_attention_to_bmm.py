"""attention_to_bmm (was projection_free_attention): bridges stop moving the feature map, self-attention becomes bmm, near misses refused."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from mobexport.export.passes import resolve
from mobexport.export.passes.attention_to_bmm import AttentionToBmmPass
from mobexport.export.passes.fold_constants import FoldConstantsPass
from mobexport.export.passes.ops import VIEW_OPS
from mobexport.kernels import token_softmax
from mobexport.models import mobile_former, vit

from .conftest import (Fires, Refuses, aten, assert_same_outputs, check_pass, export_dynamic, export_static, images,
                       op_counts, outputs, reexport_dynamic, unused_attributes, zoo_module)

TRANSPOSES = (aten.transpose.int, aten.permute.default)
RESOLUTIONS = (96, 128, 160)


def _through_views_back(node):
    while node.op == "call_function" and node.target in VIEW_OPS:
        node = node.args[0]
    return node


def _through_views_forward(node):
    while len(node.users) == 1 and next(iter(node.users)).target in VIEW_OPS:
        node = next(iter(node.users))
    return node


def feature_map_transposes(gm) -> int:
    """Transposes of a feature map into an attention matmul, or of an attention output back into a map."""
    matmuls = (aten.matmul.default, aten.bmm.default)
    count = 0
    for n in gm.graph.nodes:
        if n.op != "call_function" or n.target not in TRANSPOSES:
            continue
        source = _through_views_back(n.args[0])
        result = _through_views_forward(n)
        into_attention = (source.op != "get_attr" and source.meta["val"].dim() == 4
                          and any(u.target in matmuls for u in result.users))
        out_of_attention = source.target in matmuls and result.meta["val"].dim() == 4
        count += into_attention or out_of_attention
    return count


@pytest.fixture
def mobile_former_26m():
    return zoo_module("mobile_former_26m", 96, dynamic=True)


def test_runs_after_the_other_default_passes():
    assert {"fold_batchnorm", "fold_dynamic_relu"} <= set(AttentionToBmmPass.after)
    assert [p.id for p in resolve("default")][-2:] == ["attention_to_bmm", "fold_constants"]


def test_fires_on_mobile_former(mobile_former_26m):
    gm = mobile_former_26m
    assert feature_map_transposes(gm) == 9 + 2 * 8  # K/V of each Mobile->Former; Q and output of each Mobile<-Former
    assert op_counts(gm)[aten.matmul.default] == 2 * (9 + 8 + 8)

    (result,) = check_pass(AttentionToBmmPass, Fires(gm, images(RESOLUTIONS), rewrites=25, ops={
        aten.matmul.default: 0, aten.bmm.default: 2 * 25,
        token_softmax.OP: 8,  # Mobile<-Former's softmax over tokens
    }, details={"mobile_to_former": 9, "former_to_mobile": 8, "self_attention": 8, "residual_adds_on_bcp": 8}))

    assert feature_map_transposes(gm) == 0
    assert not any(n.target is aten.mul.Tensor and isinstance(n.args[1], float) and n.args[0].target is aten.bmm.default
                   for n in gm.graph.nodes), "attention scales were folded into the q/k linears"


def test_constants_left_by_the_rewrite_are_folded_by_fold_constants(mobile_former_26m):
    gm = mobile_former_26m
    token_reads = [n for n in gm.graph.nodes if n.op == "get_attr" and n.target == "tokens.weight"]
    assert token_reads and any(u.target is aten.repeat.default for n in token_reads for u in n.users)
    AttentionToBmmPass().run(gm)
    assert op_counts(gm)[aten.repeat.default] > 0  # attention alone leaves them to the folding pass

    (folded,) = check_pass(FoldConstantsPass, Fires(gm, images(RESOLUTIONS), rewrites=8, ops={aten.repeat.default: 0}))

    constant_linears = [n for n in gm.graph.nodes if n.target is aten.linear.default and n.args[0].op == "get_attr"]
    assert constant_linears == []  # q = W_q z0 and the gate's W z0 became constants
    assert not any(n.op == "get_attr" and n.target == "tokens.weight" for n in gm.graph.nodes)
    assert unused_attributes(gm) == []


def test_dynamic_export_and_outputs_at_three_resolutions():
    model = mobile_former.build_mobile_former("26m").eval()
    example = torch.randn(1, 3, 96, 96)
    gm = export_dynamic(model, example, multiple=32, low=64, high=192)
    x = images(RESOLUTIONS)
    before = outputs(gm, x)
    AttentionToBmmPass().run(gm)
    program = reexport_dynamic(gm, example, multiple=32, low=64, high=192)
    assert_same_outputs(before, outputs(program.module(), x))


def _tiny_bridge(kind: type[nn.Module], channels=16, token_dim=32):
    """A Mobile-Former bridge on a conv'd input, with T = 4 learned tokens."""

    class Bridge(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, channels, 3, padding=1)
            self.tokens = nn.Parameter(torch.randn(1, 4, token_dim))
            self.bridge = kind(channels, token_dim)
            self.mix = nn.Linear(token_dim, token_dim)

        def forward(self, x):
            z = self.mix(self.tokens)
            return self.bridge(self.conv(x), z)  # the map, or the tokens

    torch.manual_seed(0)
    return Bridge().eval()


@pytest.mark.parametrize("kind,site", [(mobile_former.Mobile2Former, "mobile_to_former"),
                                       (mobile_former.Former2Mobile, "former_to_mobile")])
def test_each_bridge_alone(kind, site):
    model = _tiny_bridge(kind)
    gm = export_dynamic(model, torch.randn(1, 3, 16, 24))
    x = images((8, 24, 40))
    before = outputs(gm, x)
    result = AttentionToBmmPass().run(gm)
    assert result.details[site] == 1
    assert feature_map_transposes(gm) == 0
    assert_same_outputs(before, outputs(gm, x))


class KHeadsInterleaved(mobile_former.Mobile2Former):
    """Heads take every other channel (channel j*h + i): not a head-major split."""

    def forward(self, x, z):
        q = self.q(z).unflatten(2, (self.num_heads, -1)).transpose(1, 2)
        kv = x.flatten(2).unflatten(1, (-1, self.num_heads)).transpose(1, 2)
        attn = ((q @ kv) * self.scale).softmax(dim=-1)
        return self.layer_norm(z + self.proj((attn @ kv.transpose(-1, -2)).transpose(1, 2).flatten(2)))


class VFromAnotherMap(mobile_former.Mobile2Former):
    def forward(self, x, z):
        q = self.q(z).unflatten(2, (self.num_heads, -1)).transpose(1, 2)
        k = x.flatten(2).unflatten(1, (self.num_heads, -1))
        v = (x * 2.0).flatten(2).unflatten(1, (self.num_heads, -1))
        attn = ((q @ k) * self.scale).softmax(dim=-1)
        return self.layer_norm(z + self.proj((attn @ v.transpose(-1, -2)).transpose(1, 2).flatten(2)))


class AttentionReturned(mobile_former.Mobile2Former):
    def forward(self, x, z):
        q = self.q(z).unflatten(2, (self.num_heads, -1)).transpose(1, 2)
        kv = x.flatten(2).unflatten(1, (self.num_heads, -1))
        attn = ((q @ kv) * self.scale).softmax(dim=-1)
        out = (attn @ kv.transpose(-1, -2)).transpose(1, 2).flatten(2)
        return self.layer_norm(z + self.proj(out)) + attn.mean()


class ScaledByTensor(mobile_former.Former2Mobile):
    def __init__(self, channels, token_dim):
        super().__init__(channels, token_dim)
        self.temperature = nn.Parameter(torch.tensor(0.5))

    def forward(self, x, z):
        q = x.flatten(2).unflatten(1, (self.num_heads, -1)).transpose(-1, -2)
        k = self.k(z).unflatten(2, (self.num_heads, -1)).permute(0, 2, 3, 1)
        v = self.proj(z).unflatten(2, (self.num_heads, -1)).transpose(1, 2)
        attn = ((q @ k) * self.temperature).softmax(dim=-1)
        return x + (attn @ v).transpose(-1, -2).flatten(1, 2).reshape_as(x)


class SoftmaxOverPixels(mobile_former.Former2Mobile):
    def forward(self, x, z):
        q = x.flatten(2).unflatten(1, (self.num_heads, -1)).transpose(-1, -2)
        k = self.k(z).unflatten(2, (self.num_heads, -1)).permute(0, 2, 3, 1)
        v = self.proj(z).unflatten(2, (self.num_heads, -1)).transpose(1, 2)
        attn = ((q @ k) * self.scale).softmax(dim=-2)
        return x + (attn @ v).transpose(-1, -2).flatten(1, 2).reshape_as(x)


class OutputChannelsInterleaved(mobile_former.Former2Mobile):
    def forward(self, x, z):
        q = x.flatten(2).unflatten(1, (self.num_heads, -1)).transpose(-1, -2)
        k = self.k(z).unflatten(2, (self.num_heads, -1)).permute(0, 2, 3, 1)
        v = self.proj(z).unflatten(2, (self.num_heads, -1)).transpose(1, 2)
        attn = ((q @ k) * self.scale).softmax(dim=-1)
        return x + (attn @ v).permute(0, 3, 1, 2).flatten(1, 2).reshape_as(x)  # channel c*h + i


@pytest.mark.parametrize("kind,reason", [
    (KHeadsInterleaved, "K is not the feature map split into heads along channels"),
    (VFromAnotherMap, "V is not the feature map K is read from"),
    (AttentionReturned, "attention probabilities are used by something other than matmul(attn, V)"),
    (ScaledByTensor, "attention scores is scaled by a tensor, not a constant"),
    (SoftmaxOverPixels, "softmax is not over the last axis"),
    (OutputChannelsInterleaved, "not reassembled into the [B, C, H, W] map in head-major channel order"),
])
def test_refuses_near_misses_with_the_reason(kind, reason):
    gm = export_static(_tiny_bridge(kind), torch.randn(1, 3, 16, 16))
    check_pass(AttentionToBmmPass, Refuses(gm, images((16,)), reason))


class DeitTokens(nn.Module):
    """Patches -> one DeiT block (fused qkv, q pre-scaled, unbind) -> mean token."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Conv2d(3, 32, 8, 8)
        self.block = vit.Block(32, 4)

    def forward(self, x):
        return self.block(self.embed(x).flatten(2).transpose(1, 2)).mean(1)


def test_deit_self_attention_becomes_bmm():
    torch.manual_seed(0)
    example = torch.randn(1, 3, 32, 32)
    gm = export_dynamic(DeitTokens().eval(), example, multiple=8, low=16, high=64)
    x = images((16, 32, 56))
    before = outputs(gm, x)
    result = AttentionToBmmPass().run(gm)
    assert result.details["self_attention"] == 1 and result.skipped == []
    counts = op_counts(gm)
    assert counts[aten.matmul.default] == 0 and counts[aten.bmm.default] == 2
    assert_same_outputs(before, outputs(gm, x))
    program = reexport_dynamic(gm, example, multiple=8, low=16, high=64)
    assert_same_outputs(before, outputs(program.module(), x))


def test_cmt_attention_with_position_bias_becomes_bmm():
    gm = zoo_module("cmt_ti", 64, dynamic=False)
    x = images((64,))
    before = outputs(gm, x)
    result = AttentionToBmmPass().run(gm)
    blocks = 2 + 2 + 10 + 2
    assert result.details["self_attention"] == blocks and result.skipped == []
    assert op_counts(gm)[aten.matmul.default] == 0
    assert_same_outputs(before, outputs(gm, x))


def test_leaves_a_model_without_attention_alone():
    gm = zoo_module("mobilenet_v3_small_100", 96, dynamic=True)
    code = gm.code
    result = AttentionToBmmPass().run(gm)
    assert result.rewrites == 0 and result.skipped == [] and gm.code == code
