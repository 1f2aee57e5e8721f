"""attention_to_bmm on attention written the ways users write it, not the zoo's way."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from mobexport.export.passes.attention_to_bmm import AttentionToBmmPass
from mobexport.export.passes.einsum_to_matmul import EinsumToMatmulPass
from mobexport.export.passes.sdpa_to_matmul import SdpaToMatmulPass

from ..conftest import Fires, aten, check_pass, export_dynamic, images


class Patches(nn.Module):
    """8x8 patches of a 3-channel image as [B, N, C] tokens, then ``block``, then the mean token."""

    def __init__(self, block: nn.Module, dim: int = 32):
        super().__init__()
        self.embed = nn.Conv2d(3, dim, 8, 8)
        self.block = block

    def forward(self, x):
        return self.block(self.embed(x).flatten(2).transpose(1, 2)).mean(1)


class TimmStyleIndexed(nn.Module):
    """Fused qkv, ``reshape(B, N, 3, h, c).permute(2, 0, 3, 1, 4)`` and ``qkv[0]``, ``qkv[1]``, ``qkv[2]``."""

    def __init__(self, dim=32, heads=4):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)) * self.scale
        return self.proj((attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(B, N, C))


class SeparateProjectionsViewMatmul(nn.Module):
    """Three Linears, ``view(B, N, h, c).transpose(1, 2)``, ``torch.matmul`` and a division by sqrt(c)."""

    def __init__(self, dim=32, heads=2):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        c = C // self.heads
        q, k, v = (p(x).view(B, N, self.heads, c).transpose(1, 2) for p in (self.q, self.k, self.v))
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(c)
        out = torch.matmul(F.softmax(scores, dim=-1), v)
        return out.transpose(1, 2).contiguous().view(B, N, C)


class TokensReadAMap(nn.Module):
    """Learned queries attend to a conv feature map used raw as keys and values (a Mobile->Former bridge)."""

    def __init__(self, channels=16, tokens=3, heads=2):
        super().__init__()
        self.heads = heads
        self.conv = nn.Conv2d(3, channels, 3, padding=1)
        self.queries = nn.Parameter(torch.randn(1, tokens, channels))
        self.to_q = nn.Linear(channels, channels)

    def forward(self, x):
        x = self.conv(x)
        B, C, H, W = x.shape
        c = C // self.heads
        q = self.to_q(self.queries).reshape(1, -1, self.heads, c).permute(0, 2, 1, 3)  # B, h, T, c
        kv = x.reshape(B, self.heads, c, H * W)  # B, h, c, P
        attn = torch.softmax(q @ kv * c ** -0.5, dim=-1)  # B, h, T, P
        out = attn @ kv.permute(0, 1, 3, 2)  # B, h, T, c
        return out.permute(0, 2, 1, 3).reshape(B, -1, C).sum(1)


def _check(model: nn.Module, **details):
    torch.manual_seed(0)
    gm = export_dynamic(model.eval(), torch.randn(1, 3, 32, 32), multiple=8, low=16, high=64)
    check_pass(AttentionToBmmPass, Fires(gm, images((16, 32, 48)), rewrites=1, ops={aten.matmul.default: 0},
                                         details=details))


def test_timm_style_indexed_qkv():
    torch.manual_seed(0)
    _check(Patches(TimmStyleIndexed()), self_attention=1)


def test_separate_projections_view_and_torch_matmul():
    torch.manual_seed(0)
    _check(Patches(SeparateProjectionsViewMatmul()), self_attention=1)


def test_learned_queries_reading_a_raw_feature_map():
    torch.manual_seed(0)
    _check(TokensReadAMap(), mobile_to_former=1)


class EinsumAttention(nn.Module):
    def __init__(self, dim=32, heads=4):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.heads, C // self.heads).unbind(2)  # B, N, h, c each
        attn = torch.einsum("bnhc,bmhc->bhnm", q, k).mul(C ** -0.5).softmax(-1)
        return torch.einsum("bhnm,bmhc->bnhc", attn, v).reshape(B, N, C)


class SdpaAttention(nn.Module):
    def __init__(self, dim=32, heads=4):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, C)


def test_einsum_attention():
    """einsum_to_matmul runs first in the pipeline: its matmuls are what this pass reads."""
    torch.manual_seed(0)
    gm = export_dynamic(Patches(EinsumAttention()).eval(), torch.randn(1, 3, 32, 32), multiple=8, low=16, high=64)
    check_pass(EinsumToMatmulPass, Fires(gm, images((16, 32, 48)), rewrites=2, ops={aten.einsum.default: 0}))
    check_pass(AttentionToBmmPass, Fires(gm, images((16, 32, 48)), rewrites=1, ops={aten.matmul.default: 0},
                                         details={"self_attention": 1}))


def test_scaled_dot_product_attention():
    """sdpa_to_matmul runs first in the pipeline: it spells SDPA out where this pass can take it."""
    torch.manual_seed(0)
    gm = export_dynamic(Patches(SdpaAttention()).eval(), torch.randn(1, 3, 32, 32), multiple=8, low=16, high=64)
    check_pass(SdpaToMatmulPass, Fires(gm, images((16, 32, 48)), rewrites=1,
                                       ops={aten.scaled_dot_product_attention.default: 0}))
    check_pass(AttentionToBmmPass, Fires(gm, images((16, 32, 48)), rewrites=1, ops={aten.matmul.default: 0},
                                         details={"self_attention": 1}))
