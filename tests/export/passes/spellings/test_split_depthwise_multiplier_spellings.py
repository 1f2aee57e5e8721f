"""split_depthwise_multiplier on widening depthwise convs written the ways users write them."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from mobexport.export.passes.split_depthwise_multiplier import SplitDepthwiseMultiplierPass

from ..conftest import Fires, check_pass, export_dynamic, images


class FunctionalWidening(nn.Module):
    """``F.conv2d(x, w, groups=C)`` with ``w`` of shape [4C, 1, 3, 3], no bias, stride 2."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(24, 1, 3, 3) * 0.3)

    def forward(self, x):
        return F.relu(F.conv2d(x * 2.0, self.w, stride=2, padding=1, groups=6)).mean((2, 3))


def test_functional_widening_conv():
    torch.manual_seed(0)
    x = torch.randn(1, 6, 32, 32)
    gm = export_dynamic(FunctionalWidening().eval(), x, multiple=8, low=16, high=64)
    check_pass(SplitDepthwiseMultiplierPass, Fires(gm, images((16, 32, 48), channels=6), rewrites=1))
