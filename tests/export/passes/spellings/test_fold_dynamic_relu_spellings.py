"""fold_dynamic_relu on Dynamic ReLUs written the ways users write them, not the zoo's way."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from mobexport.export.passes.fold_dynamic_relu import FoldDynamicReluPass

from ..conftest import Fires, aten, check_pass, export_dynamic, images


class DyReluSplitMax(nn.Module):
    """Coefficients from a Linear on the pooled map; ``torch.split``, ``[..., None, None]`` and ``torch.max(a, b)``."""

    def __init__(self, channels=8):
        super().__init__()
        self.channels = channels
        self.conv = nn.Conv2d(3, channels, 3, padding=1)
        self.fc = nn.Linear(channels, 2 * channels)
        nn.init.normal_(self.fc.weight, std=1.0)

    def forward(self, x):
        x = self.conv(x)
        theta = F.hardsigmoid(self.fc(x.mean(dim=(2, 3)))) * 2.0 - 1.0  # [-1, 1]
        a1, a2 = torch.split(theta, self.channels, dim=1)
        a1 = a1[..., None, None] + 1.0
        a2 = a2[..., None, None]
        return torch.max(a1 * x, a2 * x).mean((2, 3))


class DyReluXMaxMethod(nn.Module):
    """The same with ``chunk``, ``unsqueeze`` twice and ``Tensor.max`` as a method."""

    def __init__(self, channels=8):
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3, padding=1)
        self.fc = nn.Linear(channels, 2 * channels)
        nn.init.normal_(self.fc.weight, std=1.0)

    def forward(self, x):
        x = self.conv(x)
        coef = torch.clamp(self.fc(x.mean(dim=(2, 3))) / 6 + 0.5, 0, 1)
        a1, a2 = coef.chunk(2, dim=-1)
        a1 = (2 * a1).unsqueeze(-1).unsqueeze(-1)
        a2 = (2 * a2 - 1).unsqueeze(-1).unsqueeze(-1)
        return (x * a1).max(x * a2).mean((2, 3))


class DyReluConvCoefficients(nn.Module):
    """Coefficients from a 1x1 conv on the pooled [B, C, 1, 1] map instead of a Linear."""

    def __init__(self, channels=8):
        super().__init__()
        self.channels = channels
        self.conv = nn.Conv2d(3, channels, 3, padding=1)
        self.fc = nn.Conv2d(channels, 2 * channels, 1)
        nn.init.normal_(self.fc.weight, std=1.0)

    def forward(self, x):
        x = self.conv(x)
        theta = F.hardsigmoid(self.fc(F.adaptive_avg_pool2d(x, 1))) * 2.0 - 1.0  # [B, 2C, 1, 1]
        a1, a2 = theta[:, :self.channels] + 1.0, theta[:, self.channels:]
        return torch.maximum(x * a1, x * a2).mean((2, 3))


def _check(model: nn.Module, ops: dict | None = None):
    torch.manual_seed(0)
    gm = export_dynamic(model.eval(), torch.randn(2, 3, 32, 32), multiple=8, low=16, high=64)
    check_pass(FoldDynamicReluPass, Fires(gm, images((16, 32, 48), batch=2), rewrites=1, ops=ops or {},
                                          details={"hyper_functions_folded": 1}))


def test_split_indexing_and_torch_max():
    torch.manual_seed(0)
    _check(DyReluSplitMax(), {aten.hardsigmoid.default: 0, aten.clamp.default: 2})


def test_chunk_unsqueeze_and_tensor_max_method():
    torch.manual_seed(0)
    _check(DyReluXMaxMethod(), {aten.clamp.default: 2})


def test_coefficients_from_a_1x1_conv():
    torch.manual_seed(0)
    _check(DyReluConvCoefficients(), {aten.hardsigmoid.default: 0, aten.clamp.default: 2, aten.conv2d.default: 3})
