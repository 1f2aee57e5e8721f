"""einsum_to_matmul on einsums written the ways users write them; near misses refused with their reason."""

from __future__ import annotations

import torch
import torch.nn as nn

from mobexport.export.passes.einsum_to_matmul import EinsumToMatmulPass, plan

from ..conftest import Fires, Refuses, aten, check_pass, export_dynamic, images


class TokenMixer(nn.Module):
    """Heads split after a projection; scores and output as einsums over (batch, token, head, channel)."""

    def __init__(self, dim=16, heads=2):
        super().__init__()
        self.heads = heads
        self.embed = nn.Conv2d(3, dim, 4, 4)
        self.qkv = nn.Linear(dim, 3 * dim)

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)
        B, N, C = t.shape
        q, k, v = self.qkv(t).reshape(B, N, 3, self.heads, C // self.heads).unbind(2)
        attn = torch.einsum("bnhc,bmhc->bhnm", q, k).softmax(-1)
        return torch.einsum("bhnm,bmhc->bnhc", attn, v).reshape(B, N, C).mean(1)


class ChannelGram(nn.Module):
    """A feature map's channel Gram matrix, ``einsum('bchw,bdhw->bcd')`` after flattening the pixels."""

    def __init__(self, dim=8):
        super().__init__()
        self.conv = nn.Conv2d(3, dim, 3, padding=1)

    def forward(self, x):
        f = self.conv(x).flatten(2)
        return torch.einsum("bcp,bdp->bcd", f, f).mean(-1)


class Traced(nn.Module):
    def __init__(self, equation):
        super().__init__()
        self.equation = equation
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        f = self.conv(x)
        return torch.einsum(self.equation, f, f)


def _export(model):
    torch.manual_seed(0)
    return export_dynamic(model.eval(), torch.randn(1, 3, 32, 32), multiple=8, low=16, high=64)


def test_attention_einsums_over_heads():
    check_pass(EinsumToMatmulPass, Fires(_export(TokenMixer()), images((16, 32, 48)), rewrites=2,
                                         ops={aten.einsum.default: 0, aten.matmul.default: 2}))


def test_channel_gram_matrix():
    check_pass(EinsumToMatmulPass, Fires(_export(ChannelGram()), images((16, 32, 48)), rewrites=1,
                                         ops={aten.einsum.default: 0, aten.matmul.default: 1}))


def test_what_is_not_one_product_per_batch_is_refused():
    inputs = images((16, 32, 48))
    check_pass(EinsumToMatmulPass,
               Refuses(_export(Traced("bchw,bdhw->bcd")), inputs, "contracted hw"),          # two contracted indices
               Refuses(_export(Traced("bchw,bchw->bc")), inputs, "rows -"),                   # an elementwise product
               Refuses(_export(Traced("bchw,bdhw->bchw")), inputs, "sums index 'd'"))         # summed in one operand


def test_the_permutations():
    assert plan("bnhc,bmhc->bhnm") == ([0, 2, 1, 3], [0, 2, 3, 1], [0, 1, 2, 3])
    assert plan("bhnm,bmhc->bnhc") == ([0, 1, 2, 3], [0, 2, 1, 3], [0, 2, 1, 3])
    assert plan("ij,jk->ki") == ([0, 1], [0, 1], [1, 0])
