"""Mobile-Former: a MobileNet and a handful of global tokens, bridged both ways.

Chen et al., "Mobile-Former: Bridging MobileNet and Transformer", CVPR 2022
(arXiv 2108.05895). The trained weights come from the authors' release
(GitHub ``AAboys/MobileFormer``), so this file follows that code where it and
the paper differ, and keeps its ``state_dict`` key names: a checkpoint from
the release loads with ``load_state_dict(strict=True)``, no conversion.

Why it is in the zoo: it is the hybrid with the least attention compute per
MAC (6 tokens, no attention between pixels), yet it runs 3.5x slower than
MobileNetV3-L on phones at 1.35x the MACs. Its Dynamic ReLU (coefficients
made from a token at run time) and its cross-attention between a feature map
and a few tokens are exactly what our graph passes and kernels target.

Key facts (release behaviour):

* Tokens: ``tokens.weight`` (T x d), learned, shared by all images.
* Each bridged block: Mobile->Former (tokens read the map) -> Former (tokens
  attend to each other) -> Mobile (convs whose DY-ReLUs take their
  coefficients from the updated token 0) -> skip -> Mobile<-Former (the map
  reads the tokens). After the last block, one more Mobile->Former, then the
  head, which concatenates pooled features with token 0.
* Mobile->Former: 2 heads, q = Linear(d->C)(z), k = v = the raw feature map,
  scale (C/2)^-0.5, softmax over HW, then (release only, not in the paper)
  x 2*hsigmoid(Linear(d->C)(z)), W^O = Linear(C->d), z = LN(z + .).
* Former: 4 heads, q = Linear(d,d), k = v = the raw tokens, W^O, LN, then
  FFN d->2d GELU ->d, LN (post-norm throughout).
* Mobile<-Former: 2 heads, q = the raw feature map, k, v = Linear(d->C)(z),
  softmax over tokens, no W^O, x = x + .
* DY-ReLU: Linear(d,d/4) -> ReLU -> Linear(d/4,2C) -> hsigmoid gives h1, h2;
  a1 = 2(h1-0.5)+1 in [0,2], a2 = 2(h2-0.5) in [-1,1]; y = max(a1 x, a2 x).
  Only after the first two convs of a block; the others are linear.
* 26M: pointwise convs in 4 groups, with channel shuffles placed as in the
  release (after a depthwise expansion the shuffle has one group per input
  channel, which interleaves the expanded copies; after a grouped pointwise
  conv it has 4 groups).

No parameter depends on the input size; H and W only have to be multiples of
32. Attention is written as matmul -> softmax -> matmul on purpose: it is the
release's arithmetic, it lowers on every target, and passes can match it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn as nn

from .registry import register_model
from .spec import ModelSpec

CHECKPOINT_FORMAT = "AAboys/MobileFormer"


# --------------------------------------------------------------------------- #
# Blocks
# --------------------------------------------------------------------------- #


class ChannelShuffle(nn.Module):
    """(B, g*n, H, W) -> (B, n*g, H, W): channel i*n+j moves to j*g+i."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(1, (self.groups, -1)).transpose(1, 2).flatten(1, 2)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


def _conv_bn(cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1, shuffle: int = 1) -> nn.Sequential:
    """Conv (no bias) + BN, then a channel shuffle when ``shuffle > 1``.

    The shuffle comes last, so the conv and BN keep keys ``.0`` and ``.1``.
    """
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if shuffle > 1:
        layers.append(ChannelShuffle(shuffle))
    return nn.Sequential(*layers)


class DynamicReLUHyper(nn.Module):
    """Token 0 -> the DY-ReLU's (h1, h2) for C channels, as (B, 2C, 1, 1) in [0, 1].

    The release calls this a hyper-function; ``hyper.0``/``hyper.2`` are its keys.
    """

    def __init__(self, token_dim: int, channels: int, reduction: int = 4):
        super().__init__()
        squeeze = token_dim // reduction
        self.hyper = nn.Sequential(
            nn.Linear(token_dim, squeeze),
            nn.ReLU(),
            nn.Linear(squeeze, 2 * channels),
            nn.Hardsigmoid(),  # relu6(x + 3) / 6, the release's h_sigmoid
        )

    def forward(self, token0: torch.Tensor) -> torch.Tensor:
        return self.hyper(token0)[:, :, None, None]


class DynamicReLU(nn.Module):
    """y = max(a1 x, a2 x) with a1 = 2(h1 - 0.5) + 1, a2 = 2(h2 - 0.5).

    h1 is the first half of the hyper-function's channels, h2 the second.
    h = 0.5 gives a1 = 1, a2 = 0: a plain ReLU.
    """

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        h1, h2 = h.chunk(2, dim=1)
        a1 = (h1 - 0.5) * 2.0 + 1.0
        a2 = (h2 - 0.5) * 2.0
        return torch.maximum(x * a1, x * a2)


class Mobile2Former(nn.Module):
    """Tokens read the feature map: z <- LN(z + W^O(gate * attn(q(z), x, x))).

    k = v = the raw map (no projections): the cost is T x HW x C per head pair,
    which is why a few tokens are cheap. ``alpha`` is the release's gate, not
    in the paper.
    """

    num_heads = 2

    def __init__(self, channels: int, token_dim: int):
        super().__init__()
        self.scale = (channels // self.num_heads) ** -0.5
        self.alpha = nn.Sequential(nn.Linear(token_dim, channels), nn.Hardsigmoid())
        self.q = nn.Linear(token_dim, channels)
        self.proj = nn.Linear(channels, token_dim)
        self.layer_norm = nn.LayerNorm(token_dim)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        q = self.q(z).unflatten(2, (self.num_heads, -1)).transpose(1, 2)  # B, heads, T, C/heads
        kv = x.flatten(2).unflatten(1, (self.num_heads, -1))  # B, heads, C/heads, HW
        attn = ((q @ kv) * self.scale).softmax(dim=-1)  # softmax over pixels
        out = (attn @ kv.transpose(-1, -2)).transpose(1, 2).flatten(2)  # B, T, C
        out = out * (self.alpha(z) * 2.0)
        return self.layer_norm(z + self.proj(out))


class Former(nn.Module):
    """Post-norm transformer layer on the tokens; k = v = the raw tokens."""

    num_heads = 4
    ffn_expansion = 2

    def __init__(self, token_dim: int):
        super().__init__()
        hidden = token_dim * self.ffn_expansion
        # Registered FFN first only to match the release's key order.
        self.ffn = nn.Sequential(nn.Linear(token_dim, hidden), nn.GELU(), nn.Linear(hidden, token_dim))
        self.ffn_norm = nn.LayerNorm(token_dim)
        self.scale = (token_dim // self.num_heads) ** -0.5
        self.q = nn.Linear(token_dim, token_dim)
        self.channel_mlp = nn.Linear(token_dim, token_dim)  # W^O
        self.layer_norm = nn.LayerNorm(token_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        q = self.q(z).unflatten(2, (self.num_heads, -1)).transpose(1, 2)  # B, heads, T, d/heads
        kv = z.unflatten(2, (self.num_heads, -1)).transpose(1, 2)
        attn = ((q @ kv.transpose(-1, -2)) * self.scale).softmax(dim=-1)
        out = (attn @ kv).transpose(1, 2).flatten(2)
        z = self.layer_norm(z + self.channel_mlp(out))
        return self.ffn_norm(z + self.ffn(z))


class Former2Mobile(nn.Module):
    """The map reads the tokens: x <- x + attn(x, k(z), v(z)), softmax over tokens.

    q is the raw map and there is no W^O, so the only weights are the token
    projections (``proj`` is the value projection, named as in the release).
    """

    num_heads = 2

    def __init__(self, channels: int, token_dim: int):
        super().__init__()
        self.scale = (channels // self.num_heads) ** -0.5
        self.k = nn.Linear(token_dim, channels)
        self.proj = nn.Linear(token_dim, channels)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        q = x.flatten(2).unflatten(1, (self.num_heads, -1)).transpose(-1, -2)  # B, heads, HW, C/heads
        k = self.k(z).unflatten(2, (self.num_heads, -1)).permute(0, 2, 3, 1)  # B, heads, C/heads, T
        v = self.proj(z).unflatten(2, (self.num_heads, -1)).transpose(1, 2)  # B, heads, T, C/heads
        attn = ((q @ k) * self.scale).softmax(dim=-1)
        out = (attn @ v).transpose(-1, -2).flatten(1, 2)  # B, C, HW
        return x + out.reshape_as(x)


class MobileFormerBlock(nn.Module):
    """The bridged block; subclasses build the Mobile part, then call ``_add_bridges``.

    The Mobile convs are attributes of the block itself, not of a child
    module, because that is where the release keeps them (``features.3.conv1``).
    Building them before the bridges also gives the release's key order.
    """

    def _add_bridges(self, cin: int, cout: int, stride: int, token_dim: int) -> None:
        self.identity = stride == 1 and cin == cout
        self.local_global = Mobile2Former(cin, token_dim)
        self.global_block = Former(token_dim)
        self.global_local = Former2Mobile(cout, token_dim)

    def mobile(self, x: torch.Tensor, token0: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.global_block(self.local_global(x, z))
        y = self.mobile(x, z[:, 0])
        if self.identity:
            y = y + x
        return self.global_local(y, z), z


class DownsampleBlock(MobileFormerBlock):
    """D(E1|E2, c): dw3x3 s2 -> DY-ReLU -> pw c -> dw3x3 -> DY-ReLU -> pw c, inner residual.

    The release's DnaBlock3 adds its outer skip after Mobile<-Former; we only
    build it with stride 2 (as every variant does), where there is no skip.
    """

    def __init__(self, cin: int, cout: int, e1: int, e2: int, token_dim: int, groups: int = 1):
        super().__init__()
        hidden1, hidden2 = round(cin * e1), round(cout * e2)
        dw_shuffle = groups > 1  # one shuffle group per input channel (release)
        self.conv1 = _conv_bn(cin, hidden1, 3, 2, groups=cin, shuffle=cin if dw_shuffle else 1)
        self.hyper1 = DynamicReLUHyper(token_dim, hidden1)
        self.act1 = DynamicReLU()
        self.conv2 = _conv_bn(hidden1, cout, groups=groups)
        self.conv3 = _conv_bn(cout, hidden2, 3, groups=cout, shuffle=cout if dw_shuffle else 1)
        self.hyper3 = DynamicReLUHyper(token_dim, hidden2)
        self.act3 = DynamicReLU()
        self.conv4 = _conv_bn(hidden2, cout, groups=groups)
        self._add_bridges(cin, cout, 2, token_dim)

    def mobile(self, x: torch.Tensor, token0: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.act1(self.conv1(x), self.hyper1(token0)))
        return y + self.conv4(self.act3(self.conv3(y), self.hyper3(token0)))


class BottleneckBlock(MobileFormerBlock):
    """B(E, c): pw E -> DY-ReLU -> dw3x3 -> DY-ReLU -> pw-linear c."""

    def __init__(self, cin: int, cout: int, expansion: int, token_dim: int, stride: int = 1, groups: int = 1):
        super().__init__()
        hidden = round(cin * expansion)
        self.conv1 = _conv_bn(cin, hidden, groups=groups, shuffle=groups)
        self.hyper1 = DynamicReLUHyper(token_dim, hidden)
        self.act1 = DynamicReLU()
        self.conv2 = _conv_bn(hidden, hidden, 3, stride, groups=hidden)
        self.hyper2 = DynamicReLUHyper(token_dim, hidden)
        self.act2 = DynamicReLU()
        self.conv3 = _conv_bn(hidden, cout, groups=groups, shuffle=groups)
        self._add_bridges(cin, cout, stride, token_dim)

    def mobile(self, x: torch.Tensor, token0: torch.Tensor) -> torch.Tensor:
        y = self.act1(self.conv1(x), self.hyper1(token0))
        y = self.act2(self.conv2(y), self.hyper2(token0))
        return self.conv3(y)


class LiteBlock(nn.Module):
    """lite(dwE, c, s): dw3x3 expand -> ReLU6 -> pw-linear; no bridge, tokens pass through."""

    def __init__(self, cin: int, cout: int, expansion: int, stride: int, groups: int = 1):
        super().__init__()
        hidden = cin * expansion
        self.identity = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            nn.Conv2d(cin, hidden, 3, stride, 1, groups=cin, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(),
            # Index 3 is kept even without a shuffle: the pw conv's key is conv.4.
            ChannelShuffle(cin) if groups > 1 else nn.Identity(),
            nn.Conv2d(hidden, cout, 1, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.conv(x)
        return (y + x if self.identity else y), z


class ClassifierHead(nn.Module):
    """1x1 conv + BN + ReLU6 -> avgpool -> hswish -> concat token 0 -> FC + BN1d + hswish -> FC.

    Keys as in the release's MergeClassifier: ``conv.1``, ``conv.2``, ``fc.0``,
    ``fc.1``, ``classifier.1`` (the class-count-dependent Linear).
    """

    expansion = 6

    def __init__(
        self, cin: int, token_dim: int, num_features: int, num_classes: int, groups: int = 1, drop_rate: float = 0.0
    ):
        super().__init__()
        hidden = cin * self.expansion
        self.conv = nn.Sequential(
            ChannelShuffle(groups) if groups > 1 else nn.Identity(),
            nn.Conv2d(cin, hidden, 1, groups=groups, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(),
        )
        self.pool_act = nn.Hardswish()
        self.fc = nn.Sequential(
            nn.Linear(hidden + token_dim, num_features), nn.BatchNorm1d(num_features), nn.Hardswish()
        )
        self.classifier = nn.Sequential(nn.Dropout(drop_rate), nn.Linear(num_features, num_classes))

    def forward(self, x: torch.Tensor, token0: torch.Tensor) -> torch.Tensor:
        pooled = self.pool_act(self.conv(x).mean(dim=(2, 3)))
        return self.classifier(self.fc(torch.cat([pooled, token0], dim=1)))


class LearnedTokens(nn.Module):
    """The global tokens, T x d. A module only so the key is ``tokens.weight``, as in the release."""

    def __init__(self, num_tokens: int, token_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_tokens, token_dim))  # release: nn.Embedding, N(0, 1)


# --------------------------------------------------------------------------- #
# Model
# --------------------------------------------------------------------------- #


class BlockCfg(NamedTuple):
    kind: str  # "lite" | "down" | "bneck"
    e1: int
    e2: int
    channels: int
    stride: int


def lite(e: int, c: int, s: int) -> BlockCfg:
    return BlockCfg("lite", e, 0, c, s)


def down(e1: int, e2: int, c: int) -> BlockCfg:
    return BlockCfg("down", e1, e2, c, 2)


def bneck(e: int, c: int) -> BlockCfg:
    return BlockCfg("bneck", e, 0, c, 1)


@dataclass(frozen=True)
class MobileFormerConfig:
    stem: int
    num_tokens: int
    token_dim: int
    blocks: tuple[BlockCfg, ...]
    num_features: int
    groups: int = 1


class MobileFormer(nn.Module):
    """Stem -> blocks (features, tokens) -> last Mobile->Former -> head."""

    classifier_prefix = "classifier.classifier.1"

    def __init__(self, cfg: MobileFormerConfig, num_classes: int = 1000, drop_rate: float = 0.0):
        super().__init__()
        d, g = cfg.token_dim, cfg.groups
        self.tokens = LearnedTokens(cfg.num_tokens, d)
        self.stem = nn.Sequential(nn.Conv2d(3, cfg.stem, 3, 2, 1, bias=False), nn.BatchNorm2d(cfg.stem), nn.ReLU6())
        blocks: list[nn.Module] = []
        cin = cfg.stem
        for b in cfg.blocks:
            if b.kind == "lite":
                blocks.append(LiteBlock(cin, b.channels, b.e1, b.stride, groups=g))
            elif b.kind == "down":
                blocks.append(DownsampleBlock(cin, b.channels, b.e1, b.e2, d, groups=g))
            elif b.kind == "bneck":
                blocks.append(BottleneckBlock(cin, b.channels, b.e1, d, stride=b.stride, groups=g))
            else:
                raise ValueError(f"unknown Mobile-Former block kind {b.kind!r}")
            cin = b.channels
        self.features = nn.ModuleList(blocks)  # same keys as the release's nn.Sequential
        self.local_global = Mobile2Former(cin, d)
        self.classifier = ClassifierHead(cin, d, cfg.num_features, num_classes, groups=g, drop_rate=drop_rate)
        self._init_weights()

    def _init_weights(self) -> None:
        """The release's initialisation, so fresh models train like it."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, (2.0 / fan_out) ** 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # B, T, d (the release uses T, B, d). A copy, not an expand(): a no-grad
        # view of a parameter breaks FlopCounterMode's module hooks.
        z = self.tokens.weight.repeat(x.shape[0], 1, 1)
        x = self.stem(x)
        for block in self.features:
            x, z = block(x, z)
        z = self.local_global(x, z)
        return self.classifier(x, z[:, 0])


# --------------------------------------------------------------------------- #
# Builder
# --------------------------------------------------------------------------- #

_TINY_BLOCKS = (
    lite(3, 12, s=2), bneck(3, 12),
    down(6, 4, 24), bneck(3, 24),
    down(6, 4, 48), bneck(4, 48), bneck(6, 64),
    down(6, 4, 96), bneck(6, 96),
)  # fmt: skip

CONFIGS: dict[str, MobileFormerConfig] = {
    "508m": MobileFormerConfig(24, 6, 192, num_features=1920, blocks=(
        lite(2, 24, s=1),
        down(6, 4, 40), bneck(3, 40),
        down(6, 4, 72), bneck(3, 72),
        down(6, 4, 128), bneck(4, 128), bneck(6, 176), bneck(6, 176),
        down(6, 4, 240), bneck(6, 240), bneck(6, 240),
    )),
    "294m": MobileFormerConfig(16, 6, 192, num_features=1920, blocks=(
        lite(2, 16, s=1),
        down(6, 4, 24), bneck(4, 24),
        down(6, 4, 48), bneck(4, 48),
        down(6, 4, 96), bneck(4, 96), bneck(6, 128), bneck(6, 128),
        down(6, 4, 192), bneck(6, 192), bneck(6, 192),
    )),
    "214m": MobileFormerConfig(12, 6, 192, num_features=1600, blocks=(
        lite(2, 12, s=1),
        down(6, 4, 20), bneck(3, 20),
        down(6, 4, 40), bneck(4, 40),
        down(6, 4, 80), bneck(4, 80), bneck(6, 112), bneck(6, 112),
        down(6, 4, 160), bneck(6, 160), bneck(6, 160),
    )),
    "151m": MobileFormerConfig(12, 6, 192, num_features=1280, blocks=(
        lite(2, 12, s=1),
        down(6, 4, 16), bneck(3, 16),
        down(6, 4, 32), bneck(3, 32),
        down(6, 4, 64), bneck(4, 64), bneck(6, 88), bneck(6, 88),
        down(6, 4, 128), bneck(6, 128), bneck(6, 128),
    )),
    "96m": MobileFormerConfig(12, 4, 128, num_features=1280, blocks=(
        lite(2, 12, s=1),
        down(6, 4, 16),
        down(6, 4, 32), bneck(3, 32),
        down(6, 4, 64), bneck(4, 64), bneck(6, 88),
        down(6, 4, 128), bneck(6, 128),
    )),
    "52m": MobileFormerConfig(8, 3, 128, num_features=1024, blocks=_TINY_BLOCKS),
    "26m": MobileFormerConfig(8, 3, 128, num_features=1024, blocks=_TINY_BLOCKS, groups=4),
}  # fmt: skip


def build_mobile_former(variant: str, num_classes: int = 1000, **kwargs) -> MobileFormer:
    """Build one of :data:`CONFIGS` (``"26m"`` ... ``"508m"``)."""
    return MobileFormer(CONFIGS[variant], num_classes=num_classes, **kwargs)


# --------------------------------------------------------------------------- #
# Variants (reference numbers: shared/spec/models.md; MACs = conv+linear+matmul)
# --------------------------------------------------------------------------- #

_COMMON = dict(family="mobile_former", default_resolution=224, checkpoint_format=CHECKPOINT_FORMAT)


@register_model(ModelSpec(name="mobile_former_508m", reference_params=13.977e6, reference_macs=498.5e6,
                          reference_top1=79.3, description="Mobile-Former 508M: 6x192 tokens, stem 24", **_COMMON))
def mobile_former_508m(num_classes: int = 1000, resolution: int | None = None, **kwargs) -> nn.Module:
    return build_mobile_former("508m", num_classes, **kwargs)


@register_model(ModelSpec(name="mobile_former_294m", reference_params=11.423e6, reference_macs=286.7e6,
                          reference_top1=77.9, description="Mobile-Former 294M: 6x192 tokens, stem 16", **_COMMON))
def mobile_former_294m(num_classes: int = 1000, resolution: int | None = None, **kwargs) -> nn.Module:
    return build_mobile_former("294m", num_classes, **kwargs)


@register_model(ModelSpec(name="mobile_former_214m", reference_params=9.426e6, reference_macs=208.4e6,
                          reference_top1=76.7, description="Mobile-Former 214M: 6x192 tokens, stem 12", **_COMMON))
def mobile_former_214m(num_classes: int = 1000, resolution: int | None = None, **kwargs) -> nn.Module:
    return build_mobile_former("214m", num_classes, **kwargs)


@register_model(ModelSpec(name="mobile_former_151m", reference_params=7.596e6, reference_macs=146.2e6,
                          reference_top1=75.2, description="Mobile-Former 151M: 6x192 tokens, stem 12", **_COMMON))
def mobile_former_151m(num_classes: int = 1000, resolution: int | None = None, **kwargs) -> nn.Module:
    return build_mobile_former("151m", num_classes, **kwargs)


@register_model(ModelSpec(name="mobile_former_96m", reference_params=4.585e6, reference_macs=92.0e6,
                          reference_top1=72.8, description="Mobile-Former 96M: 4x128 tokens, stem 12", **_COMMON))
def mobile_former_96m(num_classes: int = 1000, resolution: int | None = None, **kwargs) -> nn.Module:
    return build_mobile_former("96m", num_classes, **kwargs)


@register_model(ModelSpec(name="mobile_former_52m", reference_params=3.469e6, reference_macs=49.3e6,
                          reference_top1=68.7, description="Mobile-Former 52M: 3x128 tokens, stem 8", **_COMMON))
def mobile_former_52m(num_classes: int = 1000, resolution: int | None = None, **kwargs) -> nn.Module:
    return build_mobile_former("52m", num_classes, **kwargs)


@register_model(ModelSpec(name="mobile_former_26m", reference_params=3.233e6, reference_macs=23.6e6,
                          reference_top1=64.0,
                          description="Mobile-Former 26M: as 52M, pointwise convs in 4 groups + shuffle", **_COMMON))
def mobile_former_26m(num_classes: int = 1000, resolution: int | None = None, **kwargs) -> nn.Module:
    return build_mobile_former("26m", num_classes, **kwargs)
