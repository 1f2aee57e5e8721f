"""sdpa_to_matmul on F.scaled_dot_product_attention as users call it; what attention_to_bmm could not take stays SDPA."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from mobexport.export.passes.sdpa_to_matmul import SdpaToMatmulPass

from ..conftest import Fires, Refuses, aten, check_pass, export_dynamic, images

SDPA = aten.scaled_dot_product_attention.default


class Tokens(nn.Module):
    """4x4 patches as [B, N, C] tokens through ``block``, then the mean token."""

    def __init__(self, block, dim=16):
        super().__init__()
        self.embed = nn.Conv2d(3, dim, 4, 4)
        self.block = block

    def forward(self, x):
        return self.block(self.embed(x).flatten(2).transpose(1, 2)).mean(1)


class FusedQkv(nn.Module):
    """timm/ViT style: one qkv Linear, ``reshape(B, N, 3, h, c).permute(2, 0, 3, 1, 4)``, ``unbind(0)``."""

    def __init__(self, dim=16, heads=2, **sdpa):
        super().__init__()
        self.heads, self.sdpa = heads, sdpa
        self.qkv = nn.Linear(dim, 3 * dim)

    def forward(self, t):
        B, N, C = t.shape
        q, k, v = self.qkv(t).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        return F.scaled_dot_product_attention(q, k, v, **self.sdpa).transpose(1, 2).reshape(B, N, C)


class SeparateProjections(nn.Module):
    """Three Linears, ``view(B, N, h, c).transpose(1, 2)``, an explicit scale, output via ``permute`` + ``flatten``."""

    def __init__(self, dim=16, heads=4):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, t):
        B, N, C = t.shape
        split = lambda x: x.view(B, N, self.heads, C // self.heads).transpose(1, 2)  # noqa: E731
        out = F.scaled_dot_product_attention(split(self.q(t)), split(self.k(t)), split(self.v(t)), scale=0.3)
        return out.permute(0, 2, 1, 3).flatten(2)


class OnAMap(nn.Module):
    """SDPA over a conv map's pixels read as [B, 1, HW, C]: no token head split, so SDPA stays."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        f = self.conv(x).flatten(2).transpose(1, 2).unsqueeze(1)
        return F.scaled_dot_product_attention(f, f, f).mean((1, 2))


def _export(model):
    torch.manual_seed(0)
    return export_dynamic(model.eval(), torch.randn(1, 3, 32, 32), multiple=8, low=16, high=64)


def test_fused_qkv():
    check_pass(SdpaToMatmulPass, Fires(_export(Tokens(FusedQkv())), images((16, 32, 48)), rewrites=1,
                                       ops={SDPA: 0, aten.matmul.default: 2, aten.softmax.int: 1}))


def test_separate_projections_and_a_given_scale():
    check_pass(SdpaToMatmulPass, Fires(_export(Tokens(SeparateProjections())), images((16, 32, 48)), rewrites=1,
                                       ops={SDPA: 0, aten.matmul.default: 2}))


def test_what_attention_to_bmm_would_not_take_stays_one_op():
    inputs = images((16, 32, 48))
    check_pass(SdpaToMatmulPass,
               Refuses(_export(Tokens(FusedQkv(is_causal=True))), inputs, "causal attention"),
               Refuses(_export(OnAMap()), inputs, "is not a head split of [B, N, C] tokens"))
