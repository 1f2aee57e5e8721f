"""CMT: Convolutional Neural Networks Meet Vision Transformers (Guo et al., CVPR 2022).

Why it is in the zoo: a hybrid whose attention carries a *resolution-dependent*
parameter (the relative position bias), the hard case for a mobile exporter
that wants one graph for many input sizes.

Architecture facts (authors' release ``huawei-noah/Efficient-AI-Backbones``,
``cmt_pytorch/cmt.py``; ``state_dict`` keys here are identical to it so its
checkpoints load strictly, without conversion):

* stem: three conv3x3 (the first stride 2), each followed by GELU then BN
  (``stem_conv{1,2,3}``, ``stem_norm{1,2,3}``);
* four stages ``a..d``; each opens with a 2x2 stride-2 conv patch embedding plus
  LayerNorm (``patch_embed_{a..d}.proj/.norm``) and stacks blocks
  (``blocks_{a..d}.<i>``); total stride 32;
* block = LPU ``x + dw3x3(x)`` (``proj``), then pre-LN LMHSA (``norm1``,
  ``attn``), then pre-LN IRFFN (``norm2``, ``mlp``), both residual;
* LMHSA: q/k/v/proj Linear layers with bias; K and V come from the tokens
  reduced by a depthwise ``r x r`` stride-``r`` conv + BN (``attn.sr.0/.1``;
  ``r`` = 8/4/2/1, none at ``r = 1``); scores ``q k^T / sqrt(d) + B`` where
  ``B = relative_pos_{a..d}`` of shape ``(heads, Hq*Wq, Hk*Wk)`` is shared by
  all blocks of a stage;
* IRFFN: 1x1 -> GELU -> BN (``mlp.conv1.0/.2``), ``y + dw3x3(y)``
  (``mlp.proj``) -> GELU -> BN (``mlp.proj_bn``), 1x1 -> BN (``mlp.conv2.0/.1``);
  hidden width ``int(dim * ratio)``;
* head: 1x1 conv to 1280 + BN + Swish (``_fc``, ``_bn``) -> global average
  pool -> Linear (``head``).

The relative position bias: the reference sizes each table for the token grid
of the resolution it was built (and trained) at: ``(res/4/2^i)^2`` queries by
``(res/32)^2`` reduced keys in every stage ``i``. We read a table as a 4-D
grid ``(Hq, Wq) x (Hk, Wk)`` and resize it bicubically over the query grid and
then over the key grid (:func:`resize_relative_pos`). The model does this at
forward time whenever the input grid is not the one it was built for, with
sizes taken from the tensors themselves, so it also holds inside
``torch.export`` with symbolic H/W; :meth:`CMT.adapt_state_dict` does the same
to a checkpoint made at another resolution.

Resolution constraint: every patch embedding halves the grid and stage ``i``
(grid ``res/2^(i+2)``) reduces K/V by ``8/2^i``, so every stage's K/V grid is
``res/32``: ``res % 32 == 0`` is exactly what the architecture needs, nothing
stricter. We accept 64..1024: at 32 the K/V grid is 1x1 and attention
degenerates to one key.

Rewrite-relevant structure of the exported graph: conv -> GELU -> BN (stem,
IRFFN) and conv -> BN (K/V reduction, IRFFN out, head) fold to conv; LayerNorm
over channels-last tokens; attention is explicit ``matmul -> mul -> add(bias)
-> softmax -> matmul`` (no SDPA) with the bias a parameter, or a bicubic
upsample of it when the grid differs from the build grid.

Deliberately left out (inference-oriented zoo): stochastic depth and dropout,
which are identities in eval mode and own no parameters.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from mobexport.errors import ResolutionError

from .registry import register_model
from .spec import ModelSpec, ResolutionRange

STAGES = ("a", "b", "c", "d")
CHECKPOINT_FORMAT = "huawei-noah/Efficient-AI-Backbones:cmt_pytorch"
RESOLUTIONS = ResolutionRange(min=64, max=1024, stride=32)


def _is_static(size: Sequence) -> bool:
    """True when every entry is a plain int (eager, or export with static shapes)."""
    return all(isinstance(s, int) for s in size)


def resize_relative_pos(
    table: torch.Tensor,
    old_q: tuple[int, int],
    old_kv: tuple[int, int],
    new_q: Sequence,
    new_kv: Sequence,
) -> torch.Tensor:
    """Resize a ``(heads, Hq*Wq, Hk*Wk)`` bias table to new query/key grids.

    The table is a function of (query position, key position), so each of the
    two grids is interpolated in 2-D (bicubic, ``align_corners=False``); a plain
    resize of the flattened ``Nq x Nk`` matrix would blend unrelated rows. New
    sizes may be symbolic (``torch.export``); a grid whose size is statically
    unchanged is left alone.
    """
    heads = table.shape[0]
    if not (_is_static(new_q) and tuple(new_q) == tuple(old_q)):
        # (heads, Hq, Wq, Nk) -> channels = key positions, image = query grid
        grid = table.reshape(heads, old_q[0], old_q[1], -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(new_q[0], new_q[1]), mode="bicubic", align_corners=False)
        table = grid.flatten(2).transpose(1, 2)  # (heads, Nq', Nk)
    if not (_is_static(new_kv) and tuple(new_kv) == tuple(old_kv)):
        grid = table.reshape(heads, -1, old_kv[0], old_kv[1])  # channels = query positions
        grid = F.interpolate(grid, size=(new_kv[0], new_kv[1]), mode="bicubic", align_corners=False)
        table = grid.flatten(2)  # (heads, Nq', Nk')
    return table


# --------------------------------------------------------------------------- blocks


class PatchEmbed(nn.Module):
    """2x2 stride-2 conv + LayerNorm over channels; map in, map out."""

    def __init__(self, in_chs: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chs, dim, kernel_size=2, stride=2)
        self.norm = nn.LayerNorm(dim)  # eps 1e-5 here, 1e-6 inside blocks (as the reference)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Attention(nn.Module):
    """LMHSA: multi-head attention with K/V from a depthwise-reduced map plus a bias table."""

    def __init__(self, dim: int, num_heads: int, sr_ratio: int):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.Sequential(
                nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio, groups=dim),
                nn.BatchNorm2d(dim),
            )

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        b, n, c = t.shape
        return t.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, t: torch.Tensor, hw: tuple, bias: torch.Tensor) -> torch.Tensor:
        b, n, c = t.shape
        kv = t
        if self.sr_ratio > 1:
            kv = self.sr(t.transpose(1, 2).reshape(b, c, hw[0], hw[1])).flatten(2).transpose(1, 2)
        q, k, v = self._heads(self.q(t)), self._heads(self.k(kv)), self._heads(self.v(kv))
        attn = (q @ k.transpose(-2, -1)) * self.scale + bias
        out = attn.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class IRFFN(nn.Module):
    """Inverted residual FFN: expand, depthwise 3x3 with a skip, project; BN after each."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(dim, hidden, 1), nn.GELU(), nn.BatchNorm2d(hidden))
        self.proj = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.proj_act = nn.GELU()
        self.proj_bn = nn.BatchNorm2d(hidden)
        self.conv2 = nn.Sequential(nn.Conv2d(hidden, dim, 1), nn.BatchNorm2d(dim))

    def forward(self, t: torch.Tensor, hw: tuple) -> torch.Tensor:
        b, n, c = t.shape
        x = self.conv1(t.transpose(1, 2).reshape(b, c, hw[0], hw[1]))
        x = self.proj_bn(self.proj_act(self.proj(x) + x))
        return self.conv2(x).flatten(2).transpose(1, 2)


class Block(nn.Module):
    """LPU -> LMHSA -> IRFFN on an NCHW map (tokens only inside)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, sr_ratio: int):
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)  # LPU
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, sr_ratio)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = IRFFN(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = x + self.proj(x)
        b, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)
        t = t + self.attn(self.norm1(t), (h, w), bias)
        t = t + self.mlp(self.norm2(t), (h, w))
        return t.transpose(1, 2).reshape(b, c, h, w)


# --------------------------------------------------------------------------- model


class CMT(nn.Module):
    """CMT with the reference's flat key layout (``stem_*``, ``*_a..d``, ``_fc``, ``head``)."""

    classifier_prefix = "head"

    def __init__(
        self,
        dims: Sequence[int],
        depths: Sequence[int],
        stem_chs: int,
        mlp_ratio: float,
        resolution: int,
        num_heads: Sequence[int] = (1, 2, 4, 8),
        sr_ratios: Sequence[int] = (8, 4, 2, 1),
        fc_dim: int = 1280,
        num_classes: int = 1000,
    ):
        super().__init__()
        self.resolution = resolution
        self.sr_ratios = tuple(sr_ratios)
        self.stem_conv1 = nn.Conv2d(3, stem_chs, 3, stride=2, padding=1)
        self.stem_relu1 = nn.GELU()
        self.stem_norm1 = nn.BatchNorm2d(stem_chs)
        self.stem_conv2 = nn.Conv2d(stem_chs, stem_chs, 3, padding=1)
        self.stem_relu2 = nn.GELU()
        self.stem_norm2 = nn.BatchNorm2d(stem_chs)
        self.stem_conv3 = nn.Conv2d(stem_chs, stem_chs, 3, padding=1)
        self.stem_relu3 = nn.GELU()
        self.stem_norm3 = nn.BatchNorm2d(stem_chs)

        # Build-time grids per stage: the bias tables are sized for these.
        self.q_grids: list[tuple[int, int]] = []
        self.kv_grids: list[tuple[int, int]] = []
        in_chs = stem_chs
        for i, name in enumerate(STAGES):
            q = resolution // 2 ** (i + 2)
            kv = q // sr_ratios[i]
            self.q_grids.append((q, q))
            self.kv_grids.append((kv, kv))
            setattr(self, f"patch_embed_{name}", PatchEmbed(in_chs, dims[i]))
            setattr(self, f"relative_pos_{name}", nn.Parameter(torch.randn(num_heads[i], q * q, kv * kv)))
            blocks = [Block(dims[i], num_heads[i], mlp_ratio, sr_ratios[i]) for _ in range(depths[i])]
            setattr(self, f"blocks_{name}", nn.ModuleList(blocks))
            in_chs = dims[i]

        self._fc = nn.Conv2d(dims[-1], fc_dim, 1)
        self._bn = nn.BatchNorm2d(fc_dim)
        self._swish = nn.SiLU()
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(fc_dim, num_classes)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            nn.init.zeros_(m.bias)

    def relative_pos(self, stage: int, q_grid: Sequence) -> torch.Tensor:
        """Stage ``stage``'s bias table for a query grid (possibly symbolic)."""
        kv_grid = (q_grid[0] // self.sr_ratios[stage], q_grid[1] // self.sr_ratios[stage])
        table = getattr(self, f"relative_pos_{STAGES[stage]}")
        return resize_relative_pos(table, self.q_grids[stage], self.kv_grids[stage], q_grid, kv_grid)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem_norm1(self.stem_relu1(self.stem_conv1(x)))
        x = self.stem_norm2(self.stem_relu2(self.stem_conv2(x)))
        x = self.stem_norm3(self.stem_relu3(self.stem_conv3(x)))
        for i, name in enumerate(STAGES):
            x = getattr(self, f"patch_embed_{name}")(x)
            bias = self.relative_pos(i, x.shape[-2:])
            for block in getattr(self, f"blocks_{name}"):
                x = block(x, bias)
        return self._swish(self._bn(self._fc(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._avg_pooling(self.forward_features(x)).flatten(1)
        return self.head(x)

    def adapt_state_dict(self, state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
        """Resize bias tables of a checkpoint made at another (square) resolution."""
        state = dict(state)
        notes = []
        for i, name in enumerate(STAGES):
            key = f"relative_pos_{name}"
            ours = getattr(self, key)
            theirs = state.get(key)
            if theirs is None or theirs.shape == ours.shape or theirs.dim() != 3 or theirs.shape[0] != ours.shape[0]:
                continue  # absent, equal, or not a table we know how to read: the loader reports it
            q, kv = math.isqrt(theirs.shape[1]), math.isqrt(theirs.shape[2])
            if q * q != theirs.shape[1] or kv * kv != theirs.shape[2]:
                continue
            with torch.no_grad():
                resized = resize_relative_pos(theirs.float(), (q, q), (kv, kv), self.q_grids[i], self.kv_grids[i])
            state[key] = resized.to(theirs.dtype).contiguous()
            old = "x".join(map(str, theirs.shape))
            new = "x".join(map(str, ours.shape))
            notes.append(
                f"{key} resized {old} -> {new} (grids {q}x{q}/{kv}x{kv} -> "
                f"{self.q_grids[i][0]}x{self.q_grids[i][1]}/{self.kv_grids[i][0]}x{self.kv_grids[i][1]}, bicubic)"
            )
        return state, notes


# --------------------------------------------------------------------------- builder


def _build(num_classes: int, resolution: int | None, default_resolution: int, **cfg) -> CMT:
    resolution = default_resolution if resolution is None else resolution
    if resolution not in RESOLUTIONS:
        raise ResolutionError(
            f"CMT cannot be built for resolution {resolution}", f"use a multiple of 32 in {RESOLUTIONS}"
        )
    return CMT(resolution=resolution, num_classes=num_classes, **cfg)


def _spec(name: str, res: int, params: float, macs: float, top1: float, note: str = "") -> ModelSpec:
    return ModelSpec(
        name=name,
        family="cmt",
        default_resolution=res,
        reference_params=params,
        reference_macs=macs,
        checkpoint_format=CHECKPOINT_FORMAT,
        resolutions=RESOLUTIONS,
        interpolation="bicubic",
        reference_top1=top1,
        description=(
            f"CMT hybrid CNN-transformer, built at {res}px by default. Inputs: multiples of 32 in 64..1024. "
            "32 is the total stride, and the K/V reductions 8/4/2/1 on the res/4..res/32 grids need exactly "
            "the same (every stage's key grid is res/32), nothing stricter; below 64 the key grid is 1x1. "
            "Relative position biases are sized for the build resolution and bicubically resized for other "
            "grids, at load (adapt_state_dict) and at run time (also under dynamic torch.export)." + note
        ),
    )


# --------------------------------------------------------------------------- variants
# reference_params: the release's exact count at the default resolution (the tables
# are part of it); reference_macs: the check table's code row.


@register_model(_spec("cmt_ti", 160, 9_492_426, 0.639e9, 79.1))
def cmt_ti(num_classes: int = 1000, resolution: int | None = None, **kwargs) -> nn.Module:
    """CMT-Ti (paper 9.5M / 0.6G @160)."""
    return _build(num_classes, resolution, 160, dims=(46, 92, 184, 368), depths=(2, 2, 10, 2),
                  stem_chs=16, mlp_ratio=3.6, **kwargs)


@register_model(_spec("cmt_xs", 192, 15_247_208, 1.547e9, 81.8))
def cmt_xs(num_classes: int = 1000, resolution: int | None = None, **kwargs) -> nn.Module:
    """CMT-XS (paper 15.2M / 1.5G @192)."""
    return _build(num_classes, resolution, 192, dims=(52, 104, 208, 416), depths=(3, 3, 12, 3),
                  stem_chs=16, mlp_ratio=3.77, **kwargs)


@register_model(_spec("cmt_s", 224, 26_256_160, 4.032e9, 83.5,
                      " Params follow the released code (26.26M); the paper states 25.1M."))
def cmt_s(num_classes: int = 1000, resolution: int | None = None, **kwargs) -> nn.Module:
    """CMT-S (code 26.26M params, paper 25.1M / 4.0G @224)."""
    return _build(num_classes, resolution, 224, dims=(64, 128, 256, 512), depths=(3, 3, 16, 3),
                  stem_chs=32, mlp_ratio=4.0, **kwargs)


@register_model(_spec("cmt_b", 256, 45_715_076, 9.317e9, 84.5))
def cmt_b(num_classes: int = 1000, resolution: int | None = None, **kwargs) -> nn.Module:
    """CMT-B (paper 45.7M / 9.3G @256)."""
    return _build(num_classes, resolution, 256, dims=(76, 152, 304, 608), depths=(4, 4, 20, 4),
                  stem_chs=38, mlp_ratio=4.0, **kwargs)
