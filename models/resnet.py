"""ResNet-18/34 (He et al., CVPR 2016) in timm's state-dict layout.

Why it is in the zoo: the baseline rows of the Visual Transformer comparison
(VT paper Table 8) and the trunk that ``visual_transformer.py`` builds on; VT
keeps the stem and stages 1-3 of a ResNet and replaces stage 4 with VT modules.

Architecture:

* stem: conv7x7 s2 (3 -> 64, no bias) -> BN -> ReLU -> maxpool 3x3 s2 p1;
* stages ``layer1..layer4`` of :class:`BasicBlock` (3x3 conv -> BN -> ReLU ->
  3x3 conv -> BN, plus shortcut, then ReLU), widths 64/128/256/512, stride 2
  in the first block of stages 2-4, where the shortcut is conv1x1 (stride 2)
  -> BN (``downsample.0`` / ``downsample.1``);
* depths 2/2/2/2 (ResNet-18) and 3/4/6/3 (ResNet-34);
* head: global average pool -> Linear (``fc``).

Keys match timm and torchvision (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer2.0.downsample.0``, ``fc``).

Reusing the trunk (for the VT family)::

    from .resnet import BasicBlock, ResNetTrunk, make_layer, RESNET_LAYERS

    class VTResNet(ResNetTrunk):
        def __init__(self, depth=18, ...):
            super().__init__(RESNET_LAYERS[depth][:3])  # stem + layer1..layer3
            # self.out_channels == 256, self.reduction == 16
            ...  # VT modules replacing layer4

        def forward(self, x):
            x = self.forward_features(x)  # (B, 256, H/16, W/16)
            ...

Subclassing keeps the trunk's keys flat (``conv1``, ``layer3.1.conv2``), the
same as the ResNet's, so a ResNet checkpoint's stem and stages 1-3 load into
the VT model by name.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from .registry import register_model
from .spec import ModelSpec

__all__ = ["BasicBlock", "RESNET_LAYERS", "ResNet", "ResNetTrunk", "make_layer", "resnet18", "resnet34"]

RESNET_LAYERS: dict[int, tuple[int, ...]] = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
STAGE_WIDTHS = (64, 128, 256, 512)


class BasicBlock(nn.Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), both convs 3x3."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.act2 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.bn2(self.conv2(x))
        return self.act2(x + shortcut)


def make_layer(block: type[nn.Module], inplanes: int, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
    """One stage: ``blocks`` blocks, the first with ``stride`` and, when the shape
    changes, a conv1x1 -> BN shortcut. Output channels: ``planes * block.expansion``."""
    out = planes * block.expansion
    downsample = None
    if stride != 1 or inplanes != out:
        downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride, bias=False), nn.BatchNorm2d(out))
    layers = [block(inplanes, planes, stride, downsample)]
    layers += [block(out, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def _init_conv_bn(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class ResNetTrunk(nn.Module):
    """Stem + the first ``len(layers)`` stages of a ResNet, without a head.

    ``layers`` gives the block count per stage, e.g. ``(2, 2, 2)`` for the
    stem and stages 1-3 of ResNet-18. After construction ``out_channels`` is
    the channel count of the last stage and ``reduction`` its total stride.
    """

    def __init__(self, layers: Sequence[int], block: type[nn.Module] = BasicBlock):
        super().__init__()
        if not 1 <= len(layers) <= len(STAGE_WIDTHS):
            raise ValueError(f"a ResNet has 1..{len(STAGE_WIDTHS)} stages, got {len(layers)}")
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.act1 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = 64
        for i, (blocks, planes) in enumerate(zip(layers, STAGE_WIDTHS)):
            stride = 1 if i == 0 else 2
            self.add_module(f"layer{i + 1}", make_layer(block, inplanes, planes, blocks, stride))
            inplanes = planes * block.expansion
        self.num_stages = len(layers)
        self.out_channels = inplanes
        self.reduction = 4 * 2 ** (len(layers) - 1)
        _init_conv_bn(self)  # a function, not a method: subclasses may define their own _init_weights

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image (B, 3, H, W) -> features (B, out_channels, H/reduction, W/reduction)."""
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        for i in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{i}")(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


class ResNet(ResNetTrunk):
    """The four-stage trunk with global average pooling and a linear classifier."""

    classifier_prefix = "fc"

    def __init__(self, layers: Sequence[int], block: type[nn.Module] = BasicBlock, num_classes: int = 1000):
        super().__init__(layers, block)
        self.num_features = self.out_channels
        self.fc = nn.Linear(self.num_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x).mean((2, 3)))


def _spec(depth: int, params: int, macs: float, top1: float) -> ModelSpec:
    return ModelSpec(
        name=f"resnet{depth}",
        family="resnet",
        default_resolution=224,
        reference_params=params,
        reference_macs=macs,
        checkpoint_format=f"timm:resnet{depth}",
        crop_pct=0.95,  # timm's default tag (a1_in1k); torchvision weights use 0.875 bilinear
        interpolation="bicubic",
        reference_top1=top1,
        description=f"ResNet-{depth} (timm a1_in1k weights at 224; VT paper Table 8 baseline)",
    )


@register_model(_spec(18, 11_689_512, 1.814e9, 71.50))
def resnet18(num_classes: int = 1000, resolution: int | None = None, **kwargs) -> ResNet:
    return ResNet(RESNET_LAYERS[18], num_classes=num_classes, **kwargs)


@register_model(_spec(34, 21_797_672, 3.664e9, 76.42))
def resnet34(num_classes: int = 1000, resolution: int | None = None, **kwargs) -> ResNet:
    return ResNet(RESNET_LAYERS[34], num_classes=num_classes, **kwargs)
