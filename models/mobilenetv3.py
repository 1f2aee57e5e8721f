"""MobileNetV3 (Howard et al., ICCV 2019) in timm's state-dict layout.

Why it is in the zoo: MobileNetV3 is the latency anchor of the mobile
comparisons (iFormer Table 3) and the plainest conv net we export, so it is the
first model every graph pass is checked against. It is written as plain
``Conv2d -> BatchNorm2d -> activation`` modules so that BN folding sees the
textbook pattern.

Architecture (timm ``mobilenetv3_{large,small}_{100,075}``):

* stem: conv3x3 s2 -> BN -> hard-swish, 16 channels (rounded by the width
  multiplier unless it is below 0.75, as in timm);
* blocks, per row of :data:`LARGE` / :data:`SMALL`: ``ds`` = depthwise-separable
  (dw kxk -> BN -> act -> [SE] -> pw 1x1 -> BN), ``ir`` = inverted residual
  (pw 1x1 expand -> BN -> act -> dw kxk -> BN -> act -> [SE] -> pw 1x1 -> BN),
  ``cn`` = conv 1x1 -> BN -> act; a residual add where stride is 1 and
  channels are unchanged; the stride applies to the first repeat of a row;
* SE: global mean -> conv1x1 (reduce, bias) -> ReLU -> conv1x1 (expand, bias)
  -> hard-sigmoid gate, with ``mid * 0.25`` reduced channels rounded to a
  multiple of 8 (so 16 channels squeeze to 8, not 4);
* channel rounding (timm's ``make_divisible``): round to the nearest multiple
  of 8, never below 8 nor below 90% of the unrounded value; output channels are
  ``round(c * width)``, expanded channels ``round(in * expansion)``;
* efficient head: global average pool -> conv1x1 with bias to 1280 (Large) or
  1024 (Small) channels, not scaled by the width -> hard-swish -> Linear.

State-dict keys match timm (``conv_stem``, ``bn1``, ``blocks.i.j.conv_pw``,
``blocks.i.j.se.conv_reduce``, ``conv_head``, ``classifier``), so a timm
checkpoint loads with ``strict=True``. Activation and gate modules hold no
parameters; they sit beside the BN (``act1`` next to ``bn1``) where timm
fuses them into ``BatchNormAct2d``, which leaves the keys unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from .registry import register_model
from .spec import ModelSpec

__all__ = ["MobileNetV3", "make_divisible", "mobilenet_v3_large_100", "mobilenet_v3_large_075",
           "mobilenet_v3_small_100", "mobilenet_v3_small_075"]


def make_divisible(value: float, divisor: int = 8, round_limit: float = 0.9) -> int:
    """timm's channel rounding: nearest multiple of ``divisor``, at least ``divisor``
    and at least ``round_limit`` of ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < round_limit * value:
        rounded += divisor
    return rounded


def _act(name: str) -> nn.Module:
    return {"relu": nn.ReLU, "hswish": nn.Hardswish}[name](inplace=True)


# ---------------------------------------------------------------------------
# blocks


class SqueezeExcite(nn.Module):
    """x * hard_sigmoid(W2 relu(W1 mean_hw(x)))."""

    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.conv_reduce = nn.Conv2d(channels, reduced, 1, bias=True)
        self.act1 = nn.ReLU(inplace=True)
        self.conv_expand = nn.Conv2d(reduced, channels, 1, bias=True)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        s = self.conv_expand(self.act1(self.conv_reduce(s)))
        return x * self.gate(s)


class ConvBnAct(nn.Module):
    """conv kxk -> BN -> act (timm's ``cn`` block, no residual)."""

    def __init__(self, in_chs: int, out_chs: int, kernel: int, stride: int, act: str):
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel, stride, kernel // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(out_chs)
        self.act1 = _act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act1(self.bn1(self.conv(x)))


class DepthwiseSeparable(nn.Module):
    """dw kxk -> BN -> act -> [SE] -> pw 1x1 -> BN, residual if shapes allow."""

    def __init__(self, in_chs: int, out_chs: int, kernel: int, stride: int, act: str, se: bool):
        super().__init__()
        self.has_skip = stride == 1 and in_chs == out_chs
        self.conv_dw = nn.Conv2d(in_chs, in_chs, kernel, stride, kernel // 2, groups=in_chs, bias=False)
        self.bn1 = nn.BatchNorm2d(in_chs)
        self.act1 = _act(act)
        self.se = SqueezeExcite(in_chs, make_divisible(in_chs * 0.25)) if se else nn.Identity()
        self.conv_pw = nn.Conv2d(in_chs, out_chs, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.se(self.act1(self.bn1(self.conv_dw(x))))
        y = self.bn2(self.conv_pw(y))
        return x + y if self.has_skip else y


class InvertedResidual(nn.Module):
    """pw expand -> BN -> act -> dw kxk -> BN -> act -> [SE] -> pw linear -> BN."""

    def __init__(self, in_chs: int, out_chs: int, kernel: int, stride: int, expansion: float, act: str, se: bool):
        super().__init__()
        mid = make_divisible(in_chs * expansion)
        self.has_skip = stride == 1 and in_chs == out_chs
        self.conv_pw = nn.Conv2d(in_chs, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.act1 = _act(act)
        self.conv_dw = nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.act2 = _act(act)
        self.se = SqueezeExcite(mid, make_divisible(mid * 0.25)) if se else nn.Identity()
        self.conv_pwl = nn.Conv2d(mid, out_chs, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act1(self.bn1(self.conv_pw(x)))
        y = self.se(self.act2(self.bn2(self.conv_dw(y))))
        y = self.bn3(self.conv_pwl(y))
        return x + y if self.has_skip else y


# ---------------------------------------------------------------------------
# architecture tables


@dataclass(frozen=True)
class Row:
    """``repeat`` blocks of one kind; ``stride`` applies to the first only."""

    kind: str  # "ds", "ir" or "cn"
    kernel: int
    stride: int
    expansion: float
    out: int
    se: bool
    act: str  # "relu" or "hswish"
    repeat: int = 1


# One inner list per stage (the ``blocks.i`` index); as in timm's arch_def.
LARGE = [
    [Row("ds", 3, 1, 1, 16, False, "relu")],
    [Row("ir", 3, 2, 4, 24, False, "relu"), Row("ir", 3, 1, 3, 24, False, "relu")],
    [Row("ir", 5, 2, 3, 40, True, "relu", repeat=3)],
    [Row("ir", 3, 2, 6, 80, False, "hswish"), Row("ir", 3, 1, 2.5, 80, False, "hswish"),
     Row("ir", 3, 1, 2.3, 80, False, "hswish", repeat=2)],
    [Row("ir", 3, 1, 6, 112, True, "hswish", repeat=2)],
    [Row("ir", 5, 2, 6, 160, True, "hswish", repeat=3)],
    [Row("cn", 1, 1, 1, 960, False, "hswish")],
]

SMALL = [
    [Row("ds", 3, 2, 1, 16, True, "relu")],
    [Row("ir", 3, 2, 4.5, 24, False, "relu"), Row("ir", 3, 1, 3.67, 24, False, "relu")],
    [Row("ir", 5, 2, 4, 40, True, "hswish"), Row("ir", 5, 1, 6, 40, True, "hswish", repeat=2)],
    [Row("ir", 5, 1, 3, 48, True, "hswish", repeat=2)],
    [Row("ir", 5, 2, 6, 96, True, "hswish", repeat=3)],
    [Row("cn", 1, 1, 1, 576, False, "hswish")],
]


# ---------------------------------------------------------------------------
# model


class MobileNetV3(nn.Module):
    """MobileNetV3 with the efficient head (pool before the 1x1 head conv)."""

    classifier_prefix = "classifier"

    def __init__(self, stages: list[list[Row]], width: float = 1.0, num_features: int = 1280,
                 num_classes: int = 1000, stem_size: int = 16):
        super().__init__()
        if width >= 0.75:  # timm leaves the stem at 16 for narrower models
            stem_size = make_divisible(stem_size * width)
        self.conv_stem = nn.Conv2d(3, stem_size, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_size)
        self.act1 = nn.Hardswish(inplace=True)

        chs = stem_size
        blocks = []
        for rows in stages:
            stage = []
            for row in rows:
                for i in range(row.repeat):
                    stride = row.stride if i == 0 else 1
                    out = make_divisible(row.out * width)
                    stage.append(_make_block(row, chs, out, stride))
                    chs = out
            blocks.append(nn.Sequential(*stage))
        self.blocks = nn.Sequential(*blocks)

        self.num_features = num_features
        self.conv_head = nn.Conv2d(chs, num_features, 1, bias=True)
        self.act2 = nn.Hardswish(inplace=True)
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Linear(num_features, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.act1(self.bn1(self.conv_stem(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x).mean((2, 3), keepdim=True)
        x = self.flatten(self.act2(self.conv_head(x)))
        return self.classifier(x)


def _make_block(row: Row, in_chs: int, out_chs: int, stride: int) -> nn.Module:
    if row.kind == "ds":
        return DepthwiseSeparable(in_chs, out_chs, row.kernel, stride, row.act, row.se)
    if row.kind == "ir":
        return InvertedResidual(in_chs, out_chs, row.kernel, stride, row.expansion, row.act, row.se)
    if row.kind == "cn":
        return ConvBnAct(in_chs, out_chs, row.kernel, stride, row.act)
    raise ValueError(f"unknown block kind {row.kind!r}")


# ---------------------------------------------------------------------------
# variants


def _spec(name: str, timm_name: str, params: float, macs: float, top1: float | None, description: str) -> ModelSpec:
    return ModelSpec(
        name=name,
        family="mobilenetv3",
        default_resolution=224,
        reference_params=params,
        reference_macs=macs,
        checkpoint_format=f"timm:{timm_name}",
        crop_pct=0.875,
        interpolation="bicubic",
        reference_top1=top1,
        description=description,
    )


@register_model(_spec("mobilenet_v3_large_100", "mobilenetv3_large_100", 5_483_032, 216.6e6, 75.78,
                      "MobileNetV3-Large 1.0 (timm ra_in1k weights: 75.78 top-1; paper 75.2)"))
def mobilenet_v3_large_100(num_classes: int = 1000, resolution: int | None = None, **kwargs) -> MobileNetV3:
    return MobileNetV3(LARGE, width=1.0, num_features=1280, num_classes=num_classes, **kwargs)


@register_model(_spec("mobilenet_v3_large_075", "mobilenetv3_large_075", 3.99e6, 155e6, 73.3,
                      "MobileNetV3-Large 0.75 (paper top-1; timm has no trained weights for it)"))
def mobilenet_v3_large_075(num_classes: int = 1000, resolution: int | None = None, **kwargs) -> MobileNetV3:
    return MobileNetV3(LARGE, width=0.75, num_features=1280, num_classes=num_classes, **kwargs)


@register_model(_spec("mobilenet_v3_small_100", "mobilenetv3_small_100", 2_542_856, 56.5e6, 67.64,
                      "MobileNetV3-Small 1.0 (timm lamb_in1k weights)"))
def mobilenet_v3_small_100(num_classes: int = 1000, resolution: int | None = None, **kwargs) -> MobileNetV3:
    return MobileNetV3(SMALL, width=1.0, num_features=1024, num_classes=num_classes, **kwargs)


@register_model(_spec("mobilenet_v3_small_075", "mobilenetv3_small_075", 2.04e6, 44e6, 65.28,
                      "MobileNetV3-Small 0.75 (timm lamb_in1k weights; MACs from the paper)"))
def mobilenet_v3_small_075(num_classes: int = 1000, resolution: int | None = None, **kwargs) -> MobileNetV3:
    return MobileNetV3(SMALL, width=0.75, num_features=1024, num_classes=num_classes, **kwargs)
