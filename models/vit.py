"""ViT / DeiT (Dosovitskiy et al., ICLR 2021; Touvron et al., ICML 2021) in timm's
state-dict layout (``timm/models/vision_transformer.py``, ``deit.py``).

Why it is in the zoo: the plain transformer baseline. It is the one family
whose parameters depend on the input size (the position table), so it is where
the compiler's resolution handling is tested: a model built for one grid runs,
and exports with dynamic H/W, at any other multiple of 16.

Architecture:

* patch embedding: conv16x16 stride 16 (3 -> D) with bias; tokens = the
  ``H/16 x W/16`` grid flattened row-major, a learned class token in front;
* learned absolute position embedding ``(1, 1 + gh*gw, D)`` added to all tokens;
* ``depth`` pre-norm blocks: ``x += attn(LN(x))``; ``x += mlp(LN(x))`` with
  LayerNorm eps 1e-6, multi-head attention with one ``qkv`` Linear (bias),
  softmax(q k^T / sqrt(d_head)) v, output ``proj``; MLP D -> 4D -> GELU -> D;
* final LayerNorm, class token -> Linear head.

| variant                 | D   | depth | heads |
|-------------------------|-----|-------|-------|
| deit_tiny_patch16_224   | 192 | 12    | 3     |
| deit_small_patch16_224  | 384 | 12    | 6     |
| deit_base_patch16_224   | 768 | 12    | 12    |
| vit_base_patch16_224    | 768 | 12    | 12    |

Resolution: the factory's ``resolution`` sets the grid the position table is
built for. An input of another size has the patch part of the table resized
bicubically on the fly (``align_corners=False``; the class-token entry is
kept), which also works under ``torch.export`` with dynamic H/W (at the built
grid the resize is exactly the identity, so a dynamic export is exact there).
:meth:`VisionTransformer.adapt_state_dict` resizes a checkpoint's table made
for another grid on load exactly as timm's ``resample_abs_pos_embed`` does
(PyTorch's antialiased bicubic). The on-the-fly resize uses plain bicubic
(``antialias=False``) instead, so the exported graph holds the common
``upsample_bicubic2d`` that ONNX and mobile targets lower; the two kernels
differ slightly (cubic coefficient -0.75 vs -0.5), so build the model at the
deployment resolution (``resolution=``) when parity with timm matters.

Attention is written as explicit matmul + softmax rather than
``scaled_dot_product_attention`` so the exported graph holds plain ops that
every target lowers and that count as MACs.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .registry import register_model
from .spec import IMAGENET_MEAN, IMAGENET_STD, ModelSpec, ResolutionRange

__all__ = ["VisionTransformer", "resample_pos_embed", "deit_tiny_patch16_224", "deit_small_patch16_224",
           "deit_base_patch16_224", "vit_base_patch16_224"]

PATCH = 16


def resample_pos_embed(pos_embed: torch.Tensor, old_grid: tuple[int, int], new_grid: tuple, num_prefix: int = 1,
                       antialias: bool = False) -> torch.Tensor:
    """Resize the grid part of a ``(1, num_prefix + h*w, D)`` table to ``new_grid``.

    ``new_grid`` may hold symbolic sizes (inside ``torch.export``); the prefix
    (class token) entries are kept as they are.
    """
    prefix, grid = pos_embed[:, :num_prefix], pos_embed[:, num_prefix:]
    dim = pos_embed.shape[-1]
    grid = grid.reshape(1, old_grid[0], old_grid[1], dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=new_grid, mode="bicubic", align_corners=False, antialias=antialias)
    grid = grid.to(pos_embed.dtype).permute(0, 2, 3, 1).reshape(1, -1, dim)
    return torch.cat([prefix, grid], dim=1)


# ---------------------------------------------------------------------------
# blocks


class PatchEmbed(nn.Module):
    """conv PxP stride P: image (B, 3, H, W) -> grid (B, D, H/P, W/P)."""

    def __init__(self, dim: int, patch: int = PATCH):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """Linear (D -> rD) -> GELU -> Linear (rD -> D)."""

    def __init__(self, dim: int, ratio: float = 4.0):
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


# ---------------------------------------------------------------------------
# model


class VisionTransformer(nn.Module):
    """ViT with a class token and a learned position table for ``img_size``."""

    classifier_prefix = "head"

    def __init__(self, embed_dim: int, depth: int, num_heads: int, img_size: int = 224, num_classes: int = 1000,
                 patch_size: int = PATCH):
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"img_size {img_size} is not a multiple of the patch size {patch_size}")
        self.patch_size = patch_size
        self.grid_size = (img_size // patch_size, img_size // patch_size)
        self.num_prefix_tokens = 1
        self.patch_embed = PatchEmbed(embed_dim, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid_size[0] * self.grid_size[1], embed_dim))
        self.blocks = nn.Sequential(*[Block(embed_dim, num_heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.num_features = embed_dim
        self.head = nn.Linear(embed_dim, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def pos_embed_for(self, grid_h, grid_w) -> torch.Tensor:
        """The position table for a ``grid_h x grid_w`` patch grid.

        Sizes known as Python ints that equal the built grid return the stored
        table; anything else (another size, or symbolic sizes while exporting
        with dynamic shapes) resizes it, which is exact when the sizes match.
        """
        if isinstance(grid_h, int) and isinstance(grid_w, int) and (grid_h, grid_w) == self.grid_size:
            return self.pos_embed
        return resample_pos_embed(self.pos_embed, self.grid_size, (grid_h, grid_w), self.num_prefix_tokens)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        pos = self.pos_embed_for(x.shape[2], x.shape[3])
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + pos
        return self.norm(self.blocks(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x)[:, 0])

    def adapt_state_dict(self, state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
        """Resize a checkpoint's ``pos_embed`` made for another (square) grid."""
        theirs = state.get("pos_embed")
        if theirs is None or theirs.shape == self.pos_embed.shape or theirs.shape[-1] != self.pos_embed.shape[-1]:
            return state, []
        side = math.isqrt(theirs.shape[1] - self.num_prefix_tokens)
        if side * side != theirs.shape[1] - self.num_prefix_tokens:
            return state, []  # not a square grid: the loader reports the shape mismatch
        state = dict(state)
        state["pos_embed"] = resample_pos_embed(theirs, (side, side), self.grid_size, self.num_prefix_tokens,
                                                antialias=True)
        gh, gw = self.grid_size
        return state, [f"pos_embed resized {side}x{side} -> {gh}x{gw}"]


# ---------------------------------------------------------------------------
# variants

RESOLUTIONS = ResolutionRange(min=96, max=1024, stride=PATCH)


def _spec(name: str, params: float, macs: float, top1: float, description: str, crop_pct: float = 0.9,
          mean: tuple = IMAGENET_MEAN, std: tuple = IMAGENET_STD) -> ModelSpec:
    return ModelSpec(
        name=name,
        family="vit",
        default_resolution=224,
        reference_params=params,
        reference_macs=macs,
        checkpoint_format=f"timm:{name}",
        resolutions=RESOLUTIONS,
        mean=mean,
        std=std,
        crop_pct=crop_pct,
        interpolation="bicubic",
        reference_top1=top1,
        description=description,
    )


def _vit(embed_dim: int, depth: int, num_heads: int, num_classes: int, resolution: int | None, **kwargs):
    return VisionTransformer(embed_dim, depth, num_heads, img_size=resolution or 224, num_classes=num_classes,
                             **kwargs)


@register_model(_spec("deit_tiny_patch16_224", 5.72e6, 1.254e9, 72.2, "DeiT-Ti: D 192, 12 blocks, 3 heads"))
def deit_tiny_patch16_224(num_classes: int = 1000, resolution: int | None = None, **kwargs) -> VisionTransformer:
    return _vit(192, 12, 3, num_classes, resolution, **kwargs)


@register_model(_spec("deit_small_patch16_224", 22.05e6, 4.599e9, 79.8, "DeiT-S: D 384, 12 blocks, 6 heads"))
def deit_small_patch16_224(num_classes: int = 1000, resolution: int | None = None, **kwargs) -> VisionTransformer:
    return _vit(384, 12, 6, num_classes, resolution, **kwargs)


@register_model(_spec("deit_base_patch16_224", 86.57e6, 17.56e9, 81.8, "DeiT-B: D 768, 12 blocks, 12 heads"))
def deit_base_patch16_224(num_classes: int = 1000, resolution: int | None = None, **kwargs) -> VisionTransformer:
    return _vit(768, 12, 12, num_classes, resolution, **kwargs)


@register_model(_spec("vit_base_patch16_224", 86.57e6, 17.56e9, 85.1,
                      "ViT-B/16, the DeiT-B architecture (timm augreg2_in21k_ft_in1k weights)",
                      crop_pct=0.9, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)))
def vit_base_patch16_224(num_classes: int = 1000, resolution: int | None = None, **kwargs) -> VisionTransformer:
    return _vit(768, 12, 12, num_classes, resolution, **kwargs)
