"""Mobile-Former as a researcher writes it: the yardstick for "a plain export".

Chen et al., "Mobile-Former: Bridging MobileNet and Transformer", CVPR 2022
(arXiv 2108.05895), in the style of the authors' release (AAboys/MobileFormer):
tokens kept as (T, B, d), attention as ``view``/``permute`` -> ``@`` ->
``softmax`` -> ``@``, DY-ReLU as ``torch.max(x * a1, x * a2)``, a channel
shuffle as view -> transpose -> contiguous -> view. Nothing here is written
for an exporter; that is the point. :mod:`.compiler_benchmark` exports this
model with ``torch.onnx.export`` / ``torch.export`` as a user would, and
compares it with what mobexport makes of the zoo model.

The ``state_dict`` keys and shapes are the zoo's (``models/mobile_former.py``),
which are the release's, so ``plain.load_state_dict(zoo.state_dict())`` loads
strictly and both compute the same function. Only the variant table
(``CONFIGS``) is shared with the zoo; every module is written here.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from mobexport.models.mobile_former import CONFIGS, MobileFormerConfig

__all__ = ["MobileFormer", "plain_mobile_former"]


class h_sigmoid(nn.Module):  # noqa: N801 - the release's name
    def forward(self, x):
        return F.relu6(x + 3.0) / 6.0


class h_swish(nn.Module):  # noqa: N801 - the release's name
    def forward(self, x):
        return x * F.relu6(x + 3.0) / 6.0


class ChannelShuffle(nn.Module):
    """ShuffleNet's shuffle: lets the grouped 1x1 convs of the 26M variant see each other's channels."""

    def __init__(self, groups):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        b, c, h, w = x.shape
        x = x.view(b, self.groups, c // self.groups, h, w)
        x = torch.transpose(x, 1, 2).contiguous()
        return x.view(b, c, h, w)


class HyperFunc(nn.Module):
    """Token 0 -> DY-ReLU coefficients (h1, h2) in [0, 1], one pair per channel, as (B, 2C, 1, 1)."""

    def __init__(self, token_dim, channels, reduction=4):
        super().__init__()
        self.hyper = nn.Sequential(
            nn.Linear(token_dim, token_dim // reduction),
            nn.ReLU(),
            nn.Linear(token_dim // reduction, 2 * channels),
            h_sigmoid(),
        )

    def forward(self, tokens):
        h = self.hyper(tokens[0])  # token 0 of (T, B, d)
        return h.unsqueeze(2).unsqueeze(3)


def dy_relu(x, h):
    """max(a1 x, a2 x) with a1 in [0, 2] and a2 in [-1, 1] from the hyper-function (h = 0.5: a ReLU)."""
    c = x.shape[1]
    a1, a2 = torch.split(h, [c, c], dim=1)
    a1 = (a1 - 0.5) * 2.0 + 1.0
    a2 = (a2 - 0.5) * 2.0
    return torch.max(x * a1, x * a2)


class Mobile2Former(nn.Module):
    """Tokens read the feature map (2 heads; k = v = the map itself), gated by ``alpha`` as in the release."""

    def __init__(self, channels, token_dim, num_heads=2):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (channels // num_heads) ** -0.5
        self.alpha = nn.Sequential(nn.Linear(token_dim, channels), h_sigmoid())
        self.q = nn.Linear(token_dim, channels)
        self.proj = nn.Linear(channels, token_dim)
        self.layer_norm = nn.LayerNorm(token_dim)

    def forward(self, x, tokens):
        b, c, h, w = x.shape
        t = tokens.shape[0]
        q = self.q(tokens).view(t, b, self.num_heads, -1).permute(1, 2, 0, 3)  # B x N x T x C/N
        k = x.view(b, self.num_heads, -1, h * w)  # B x N x C/N x HW
        attn = ((q @ k) * self.scale).softmax(dim=-1)  # over pixels
        out = attn @ k.transpose(-1, -2)  # B x N x T x C/N
        out = out.permute(2, 0, 1, 3).reshape(t, b, c)
        out = out * self.alpha(tokens) * 2.0
        return self.layer_norm(tokens + self.proj(out))


class Former(nn.Module):
    """Self-attention among the tokens (4 heads, k = v = the tokens), then an FFN; post-norm."""

    def __init__(self, token_dim, num_heads=4, ffn_expansion=2):
        super().__init__()
        self.num_heads = num_heads
        self.ffn = nn.Sequential(
            nn.Linear(token_dim, token_dim * ffn_expansion),
            nn.GELU(),
            nn.Linear(token_dim * ffn_expansion, token_dim),
        )
        self.ffn_norm = nn.LayerNorm(token_dim)
        self.scale = (token_dim // num_heads) ** -0.5
        self.q = nn.Linear(token_dim, token_dim)
        self.channel_mlp = nn.Linear(token_dim, token_dim)
        self.layer_norm = nn.LayerNorm(token_dim)

    def forward(self, tokens):
        t, b, d = tokens.shape
        q = self.q(tokens).view(t, b, self.num_heads, -1).permute(1, 2, 0, 3)  # B x N x T x d/N
        k = tokens.view(t, b, self.num_heads, -1).permute(1, 2, 3, 0)  # B x N x d/N x T
        attn = ((q @ k) * self.scale).softmax(dim=-1)
        out = (attn @ k.transpose(-1, -2)).permute(2, 0, 1, 3).reshape(t, b, d)
        tokens = self.layer_norm(tokens + self.channel_mlp(out))
        return self.ffn_norm(tokens + self.ffn(tokens))


class Former2Mobile(nn.Module):
    """The map reads the tokens (2 heads; q = the map itself, no output projection), residual."""

    def __init__(self, channels, token_dim, num_heads=2):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (channels // num_heads) ** -0.5
        self.k = nn.Linear(token_dim, channels)
        self.proj = nn.Linear(token_dim, channels)  # the values

    def forward(self, x, tokens):
        b, c, h, w = x.shape
        t = tokens.shape[0]
        q = x.view(b, self.num_heads, -1, h * w).transpose(-1, -2)  # B x N x HW x C/N
        k = self.k(tokens).permute(1, 2, 0).view(b, self.num_heads, -1, t)  # B x N x C/N x T
        v = self.proj(tokens).permute(1, 2, 0).view(b, self.num_heads, -1, t)
        attn = ((q @ k) * self.scale).softmax(dim=-1)  # over tokens
        out = attn @ v.transpose(-1, -2)  # B x N x HW x C/N
        return x + out.transpose(-1, -2).reshape(b, c, h, w)


def conv_bn(cin, cout, kernel=1, stride=1, groups=1, shuffle=1):
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if shuffle > 1:
        layers.append(ChannelShuffle(shuffle))
    return nn.Sequential(*layers)


class LiteBlock(nn.Module):
    """dw3x3 expansion -> ReLU6 -> 1x1; the tokens pass through untouched."""

    def __init__(self, cin, cout, expansion, stride, groups=1):
        super().__init__()
        hidden = cin * expansion
        self.identity = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            nn.Conv2d(cin, hidden, 3, stride, 1, groups=cin, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(),
            ChannelShuffle(cin) if groups > 1 else nn.Identity(),
            nn.Conv2d(hidden, cout, 1, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x, tokens):
        out = self.conv(x)
        return (out + x if self.identity else out), tokens


class DownBlock(nn.Module):
    """Stride-2 block: dw -> DY-ReLU -> pw -> dw -> DY-ReLU -> pw with an inner skip, bridged to the tokens."""

    def __init__(self, cin, cout, e1, e2, token_dim, groups=1):
        super().__init__()
        hidden1, hidden2 = round(cin * e1), round(cout * e2)
        shuffled = groups > 1
        self.conv1 = conv_bn(cin, hidden1, 3, 2, groups=cin, shuffle=cin if shuffled else 1)
        self.hyper1 = HyperFunc(token_dim, hidden1)
        self.conv2 = conv_bn(hidden1, cout, groups=groups)
        self.conv3 = conv_bn(cout, hidden2, 3, groups=cout, shuffle=cout if shuffled else 1)
        self.hyper3 = HyperFunc(token_dim, hidden2)
        self.conv4 = conv_bn(hidden2, cout, groups=groups)
        self.local_global = Mobile2Former(cin, token_dim)
        self.global_block = Former(token_dim)
        self.global_local = Former2Mobile(cout, token_dim)

    def forward(self, x, tokens):
        tokens = self.global_block(self.local_global(x, tokens))
        out = self.conv2(dy_relu(self.conv1(x), self.hyper1(tokens)))
        out = out + self.conv4(dy_relu(self.conv3(out), self.hyper3(tokens)))
        return self.global_local(out, tokens), tokens


class BneckBlock(nn.Module):
    """Inverted bottleneck: pw -> DY-ReLU -> dw -> DY-ReLU -> pw, skip, bridged to the tokens."""

    def __init__(self, cin, cout, expansion, token_dim, stride=1, groups=1):
        super().__init__()
        hidden = round(cin * expansion)
        self.identity = stride == 1 and cin == cout
        self.conv1 = conv_bn(cin, hidden, groups=groups, shuffle=groups)
        self.hyper1 = HyperFunc(token_dim, hidden)
        self.conv2 = conv_bn(hidden, hidden, 3, stride, groups=hidden)
        self.hyper2 = HyperFunc(token_dim, hidden)
        self.conv3 = conv_bn(hidden, cout, groups=groups, shuffle=groups)
        self.local_global = Mobile2Former(cin, token_dim)
        self.global_block = Former(token_dim)
        self.global_local = Former2Mobile(cout, token_dim)

    def forward(self, x, tokens):
        tokens = self.global_block(self.local_global(x, tokens))
        out = dy_relu(self.conv1(x), self.hyper1(tokens))
        out = dy_relu(self.conv2(out), self.hyper2(tokens))
        out = self.conv3(out)
        if self.identity:
            out = out + x
        return self.global_local(out, tokens), tokens


class MergeClassifier(nn.Module):
    """1x1 expansion, pooled, concatenated with token 0, then two FCs (the release's head)."""

    def __init__(self, cin, token_dim, num_features, num_classes, groups=1, expansion=6, drop_rate=0.0):
        super().__init__()
        hidden = cin * expansion
        self.conv = nn.Sequential(
            ChannelShuffle(groups) if groups > 1 else nn.Identity(),
            nn.Conv2d(cin, hidden, 1, groups=groups, bias=False),
            nn.BatchNorm2d(hidden),
        )
        self.act = nn.ReLU6()
        self.avgpool = nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), h_swish())
        self.fc = nn.Sequential(nn.Linear(hidden + token_dim, num_features), nn.BatchNorm1d(num_features), h_swish())
        self.classifier = nn.Sequential(nn.Dropout(drop_rate), nn.Linear(num_features, num_classes))

    def forward(self, x, tokens):
        x = self.avgpool(self.act(self.conv(x)))
        x = x.view(x.size(0), -1)
        x = torch.cat([x, tokens[0]], dim=1)
        return self.classifier(self.fc(x))


class MobileFormer(nn.Module):
    def __init__(self, cfg: MobileFormerConfig, num_classes=1000):
        super().__init__()
        d, g = cfg.token_dim, cfg.groups
        self.tokens = nn.Embedding(cfg.num_tokens, d)  # the release's learned tokens: key tokens.weight
        self.stem = nn.Sequential(nn.Conv2d(3, cfg.stem, 3, 2, 1, bias=False), nn.BatchNorm2d(cfg.stem), nn.ReLU6())
        layers = []
        cin = cfg.stem
        for b in cfg.blocks:
            if b.kind == "lite":
                layers.append(LiteBlock(cin, b.channels, b.e1, b.stride, groups=g))
            elif b.kind == "down":
                layers.append(DownBlock(cin, b.channels, b.e1, b.e2, d, groups=g))
            else:
                layers.append(BneckBlock(cin, b.channels, b.e1, d, stride=b.stride, groups=g))
            cin = b.channels
        self.features = nn.ModuleList(layers)
        self.local_global = Mobile2Former(cin, d)
        self.classifier = MergeClassifier(cin, d, cfg.num_features, num_classes, groups=g)

    def forward(self, x):
        bs = x.shape[0]
        tokens = self.tokens.weight[None].repeat(bs, 1, 1).permute(1, 0, 2)  # T x B x d
        x = self.stem(x)
        for block in self.features:
            x, tokens = block(x, tokens)
        tokens = self.local_global(x, tokens)
        return self.classifier(x, tokens)


def plain_mobile_former(variant: str, num_classes: int = 1000) -> nn.Module:
    """A plain Mobile-Former, ``variant`` as in the zoo (``"26m"`` ... ``"508m"``, or ``"mobile_former_294m"``)."""
    key = variant.removeprefix("mobile_former_")
    if key not in CONFIGS:
        raise ValueError(f"unknown Mobile-Former variant {variant!r}; one of {', '.join(CONFIGS)}")
    return MobileFormer(CONFIGS[key], num_classes)
