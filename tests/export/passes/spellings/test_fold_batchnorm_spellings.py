"""fold_batchnorm on conv/BN written the ways users write them, not the zoo's way."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from mobexport.export.passes.fold_batchnorm import FoldBatchnormPass

from ..conftest import Fires, aten, check_pass, export_dynamic, images, randomize_batchnorm

BN = aten.batch_norm.default


class ConvWithBiasThenBn(nn.Module):
    """A conv that keeps its bias before the BN (redundant, but common in user code)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 12, 3, padding=1, bias=True), nn.BatchNorm2d(12), nn.ReLU6())
        self.head = nn.Linear(12, 4)

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))


class FunctionalBn(nn.Module):
    """``F.conv2d`` and ``F.batch_norm`` on the module's own tensors, no nn.BatchNorm2d."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(10, 3, 3, 3) * 0.2)
        self.register_buffer("running_mean", torch.randn(10) * 0.3)
        self.register_buffer("running_var", torch.rand(10) + 0.5)
        self.gamma = nn.Parameter(torch.rand(10) + 0.5)
        self.beta = nn.Parameter(torch.randn(10) * 0.3)

    def forward(self, x):
        y = F.conv2d(x, self.weight, None, stride=2, padding=1)
        y = F.batch_norm(y, self.running_mean, self.running_var, self.gamma, self.beta, training=False, eps=1e-3)
        return torch.flatten(F.adaptive_avg_pool2d(F.silu(y), 1), 1)


class LinearThenBn1d(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 6)
        self.bn = nn.BatchNorm1d(6)

    def forward(self, x):
        return self.bn(self.fc(self.stem(x).mean((2, 3))))


def _check(model: nn.Module, rewrites: int):
    torch.manual_seed(0)
    model = randomize_batchnorm(model).eval()
    gm = export_dynamic(model, torch.randn(1, 3, 32, 32), multiple=8, low=16, high=64)
    check_pass(FoldBatchnormPass, Fires(gm, images((16, 32, 48)), rewrites=rewrites, ops={BN: 0}))


def test_conv_with_its_own_bias_then_bn():
    _check(ConvWithBiasThenBn(), 1)


def test_functional_conv_and_batch_norm():
    _check(FunctionalBn(), 1)


def test_linear_then_batchnorm1d():
    _check(LinearThenBn1d(), 1)
