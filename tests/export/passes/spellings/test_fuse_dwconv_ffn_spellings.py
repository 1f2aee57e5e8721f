"""fuse_dwconv_ffn on depthwise shortcuts written the ways users write them."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from mobexport.export.passes.fuse_dwconv_ffn import FuseDwconvFfnPass

from ..conftest import Fires, aten, check_pass, export_dynamic, images


class TorchAddSamePadding(nn.Module):
    """``torch.add(dw(x), x)`` with ``padding="same"`` and a 5x5 kernel."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Conv2d(3, 16, 1)
        self.dw = nn.Conv2d(16, 16, 5, padding="same", groups=16)

    def forward(self, x):
        x = self.proj(x)
        return torch.add(self.dw(x), x).mean((2, 3))


class FunctionalInPlaceStyle(nn.Module):
    """``x = x + F.conv2d(x, w, b, padding=1, groups=C)``, the weight a bare parameter."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Conv2d(3, 8, 1)
        self.w = nn.Parameter(torch.randn(8, 1, 3, 3) * 0.3)
        self.b = nn.Parameter(torch.randn(8) * 0.1)

    def forward(self, x):
        x = self.proj(x)
        x = x + F.conv2d(x, self.w, self.b, padding=1, groups=8)
        return F.gelu(x).mean((2, 3))


def _check(model: nn.Module):
    torch.manual_seed(0)
    gm = export_dynamic(model.eval(), torch.randn(1, 3, 32, 32), multiple=8, low=16, high=64)
    adds = sum(1 for n in gm.graph.nodes if n.target is aten.add.Tensor)
    check_pass(FuseDwconvFfnPass, Fires(gm, images((16, 32, 48)), rewrites=1, ops={aten.add.Tensor: adds - 1}))


def test_torch_add_with_same_padding_string():
    _check(TorchAddSamePadding())


def test_functional_conv_shortcut_on_the_left():
    _check(FunctionalInPlaceStyle())
