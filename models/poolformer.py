"""PoolFormer (Yu et al., "MetaFormer Is Actually What You Need for Vision",
CVPR 2022) in timm's state-dict layout (``timm/models/metaformer.py``).

Why it is in the zoo: PoolFormer is the MetaFormer baseline whose token mixer
has no parameters, only an average pool; it checks that the compiler handles a
transformer-shaped conv net, GroupNorm, GELU and ``count_include_pad=False``
pooling under dynamic shapes and in ONNX.

Architecture:

* stem: conv7x7 stride 4 padding 2 (3 -> d0), no norm;
* 4 stages; stage i > 0 opens with a conv3x3 stride 2 padding 1 downsampling
  (d_{i-1} -> d_i);
* block: ``x = x + ls1 * mixer(GN(x))``; ``x = x + ls2 * mlp(GN(x))`` with
  GN = GroupNorm(1 group) (eps 1e-5), mixer = AvgPool3x3(stride 1, padding 1,
  ``count_include_pad=False``)(x) - x, mlp = conv1x1 (d -> 4d) -> GELU ->
  conv1x1 (4d -> d), LayerScale vectors initialised to 1e-5 (S12, S24) or
  1e-6 (S36, M36, M48);
* head: global average pool -> LayerNorm over channels (eps 1e-6) -> Linear.

| variant | depths      | dims             |
|---------|-------------|------------------|
| S12     | 2, 2, 6, 2  | 64, 128, 320, 512 |
| S24     | 4, 4, 12, 4 | 64, 128, 320, 512 |
| S36     | 6, 6, 18, 6 | 64, 128, 320, 512 |
| M36     | 6, 6, 18, 6 | 96, 192, 384, 768 |
| M48     | 8, 8, 24, 8 | 96, 192, 384, 768 |

Keys follow timm (``stem.conv``, ``stages.1.downsample.conv``,
``stages.0.blocks.0.norm1``, ``...layer_scale1.scale``, ``...mlp.fc1``,
``head.norm``, ``head.fc``). The head follows timm too: the original sail-sg
code applies its GroupNorm before pooling, timm a channel LayerNorm after it;
the parameters are the same and timm reproduces the published accuracy with
them. :meth:`PoolFormer.adapt_state_dict` renames checkpoints in the sail-sg
layout (``patch_embed.proj``, ``network.N.j``, ``layer_scale_1``, ``norm``,
``head``) to timm's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
import torch.nn as nn

from .registry import register_model
from .spec import ModelSpec

__all__ = ["PoolFormer", "poolformer_s12", "poolformer_s24", "poolformer_s36", "poolformer_m36", "poolformer_m48"]


# ---------------------------------------------------------------------------
# blocks


class Pooling(nn.Module):
    """avg_pool3x3(x) - x, the pool averaging over in-image neighbours only."""

    def __init__(self, pool_size: int = 3):
        super().__init__()
        self.pool = nn.AvgPool2d(pool_size, stride=1, padding=pool_size // 2, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x) - x


class Scale(nn.Module):
    """LayerScale: per-channel multiplier on an NCHW tensor."""

    def __init__(self, dim: int, init_value: float):
        super().__init__()
        self.scale = nn.Parameter(torch.full((dim,), init_value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.view(-1, 1, 1)


class Mlp(nn.Module):
    """conv1x1 (d -> r*d) -> GELU -> conv1x1 (r*d -> d)."""

    def __init__(self, dim: int, ratio: float = 4.0):
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class PoolFormerBlock(nn.Module):
    """x + ls1 * pool_mixer(GN(x)), then + ls2 * mlp(GN(x))."""

    def __init__(self, dim: int, layer_scale: float, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(1, dim)
        self.token_mixer = Pooling()
        self.layer_scale1 = Scale(dim, layer_scale)
        self.norm2 = nn.GroupNorm(1, dim)
        self.mlp = Mlp(dim, mlp_ratio)
        self.layer_scale2 = Scale(dim, layer_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.layer_scale1(self.token_mixer(self.norm1(x)))
        return x + self.layer_scale2(self.mlp(self.norm2(x)))


class Stem(nn.Module):
    """conv7x7 stride 4 padding 2."""

    def __init__(self, out_chs: int):
        super().__init__()
        self.conv = nn.Conv2d(3, out_chs, 7, stride=4, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Downsampling(nn.Module):
    """conv3x3 stride 2 padding 1 between stages."""

    def __init__(self, in_chs: int, out_chs: int):
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Stage(nn.Module):
    """Optional downsampling, then ``depth`` PoolFormer blocks."""

    def __init__(self, in_chs: int, out_chs: int, depth: int, layer_scale: float):
        super().__init__()
        self.downsample = nn.Identity() if in_chs == out_chs else Downsampling(in_chs, out_chs)
        self.blocks = nn.Sequential(*[PoolFormerBlock(out_chs, layer_scale) for _ in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class Head(nn.Module):
    """global average pool -> LayerNorm over channels -> Linear."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(x.mean((2, 3))))


# ---------------------------------------------------------------------------
# model


class PoolFormer(nn.Module):
    """PoolFormer v1: conv stem, four stages of pooling blocks, LN + linear head."""

    classifier_prefix = "head.fc"

    def __init__(self, depths: Sequence[int], dims: Sequence[int], layer_scale: float, num_classes: int = 1000):
        super().__init__()
        self.stem = Stem(dims[0])
        stages, prev = [], dims[0]
        for depth, dim in zip(depths, dims):
            stages.append(Stage(prev, dim, depth, layer_scale))
            prev = dim
        self.stages = nn.Sequential(*stages)
        self.num_features = dims[-1]
        self.head = Head(dims[-1], num_classes)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))

    def adapt_state_dict(self, state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
        """Rename a sail-sg PoolFormer checkpoint to timm's keys; leave timm's alone."""
        if not any(k.startswith("network.") for k in state):
            return state, []
        renamed = {_sail_to_timm(k): v for k, v in state.items()}
        return renamed, ["PoolFormer checkpoint in the sail-sg layout (network.N) renamed to timm's keys; "
                         "the head runs timm's way (LayerNorm after pooling)"]


_SAIL_BLOCK = re.compile(r"^network\.(\d+)\.(\d+)\.(.*)$")
_SAIL_DOWN = re.compile(r"^network\.(\d+)\.proj\.(.*)$")


def _sail_to_timm(key: str) -> str:
    """sail-sg ``network`` alternates stages (even N) and downsamplings (odd N)."""
    if key.startswith("patch_embed.proj."):
        return "stem.conv." + key[len("patch_embed.proj."):]
    if m := _SAIL_BLOCK.match(key):
        rest = re.sub(r"^layer_scale_(\d)$", r"layer_scale\1.scale", m.group(3))
        return f"stages.{int(m.group(1)) // 2}.blocks.{m.group(2)}.{rest}"
    if m := _SAIL_DOWN.match(key):
        return f"stages.{(int(m.group(1)) + 1) // 2}.downsample.conv.{m.group(2)}"
    if key.startswith("norm."):
        return "head." + key
    if key.startswith("head."):
        return "head.fc." + key[len("head."):]
    return key


# ---------------------------------------------------------------------------
# variants


def _spec(name: str, params: float, macs: float, top1: float, crop_pct: float, description: str) -> ModelSpec:
    return ModelSpec(
        name=name,
        family="poolformer",
        default_resolution=224,
        reference_params=params,
        reference_macs=macs,
        checkpoint_format=f"timm:{name}",
        crop_pct=crop_pct,
        interpolation="bicubic",
        reference_top1=top1,
        description=description,
    )


S_DIMS = (64, 128, 320, 512)
M_DIMS = (96, 192, 384, 768)


@register_model(_spec("poolformer_s12", 11.92e6, 1.812e9, 77.2, 0.9, "PoolFormer-S12, depths 2/2/6/2"))
def poolformer_s12(num_classes: int = 1000, resolution: int | None = None, **kwargs) -> PoolFormer:
    return PoolFormer((2, 2, 6, 2), S_DIMS, layer_scale=1e-5, num_classes=num_classes, **kwargs)


@register_model(_spec("poolformer_s24", 21.39e6, 3.392e9, 80.3, 0.9, "PoolFormer-S24, depths 4/4/12/4"))
def poolformer_s24(num_classes: int = 1000, resolution: int | None = None, **kwargs) -> PoolFormer:
    return PoolFormer((4, 4, 12, 4), S_DIMS, layer_scale=1e-5, num_classes=num_classes, **kwargs)


@register_model(_spec("poolformer_s36", 30.86e6, 4.972e9, 81.4, 0.9, "PoolFormer-S36, depths 6/6/18/6"))
def poolformer_s36(num_classes: int = 1000, resolution: int | None = None, **kwargs) -> PoolFormer:
    return PoolFormer((6, 6, 18, 6), S_DIMS, layer_scale=1e-6, num_classes=num_classes, **kwargs)


@register_model(_spec("poolformer_m36", 56.17e6, 8.759e9, 82.1, 0.95, "PoolFormer-M36, depths 6/6/18/6, wide"))
def poolformer_m36(num_classes: int = 1000, resolution: int | None = None, **kwargs) -> PoolFormer:
    return PoolFormer((6, 6, 18, 6), M_DIMS, layer_scale=1e-6, num_classes=num_classes, **kwargs)


@register_model(_spec("poolformer_m48", 73.47e6, 11.533e9, 82.5, 0.95, "PoolFormer-M48, depths 8/8/24/8, wide"))
def poolformer_m48(num_classes: int = 1000, resolution: int | None = None, **kwargs) -> PoolFormer:
    return PoolFormer((8, 8, 24, 8), M_DIMS, layer_scale=1e-6, num_classes=num_classes, **kwargs)
