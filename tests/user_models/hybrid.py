"""A Mobile-Former-style hybrid written the way another repository writes it (not our zoo's code).

Differences in spelling from ``models/mobile_former.py``: Dynamic ReLU whose
coefficients come from a 1x1 conv over the pooled token (not a Linear) and
whose max is ``x.max(a)`` style (``torch.max`` of two products); cross-attention
with ``torch.einsum`` and heads split *after* a projection; ``reshape`` and
``flatten`` instead of ``view``; a depthwise shortcut ``x + dw(x)``; conv-BN
chains with and without bias.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class DyReLU(nn.Module):
    """y = max(a1 * x, a2 * x) with per-channel slopes from the first token, through a 1x1 conv."""

    def __init__(self, channels, token_dim, reduction=4):
        super().__init__()
        self.channels = channels
        self.fc1 = nn.Conv2d(token_dim, token_dim // reduction, 1)
        self.fc2 = nn.Conv2d(token_dim // reduction, 2 * channels, 1)

    def forward(self, x, tokens):
        t = tokens[:, 0, :].reshape(tokens.shape[0], -1, 1, 1)  # [B, D, 1, 1]
        coeffs = F.hardsigmoid(self.fc2(F.relu(self.fc1(t))))
        a1, a2 = torch.split(coeffs, self.channels, dim=1)
        a1 = (a1 - 0.5) * 2.0 + 1.0
        a2 = (a2 - 0.5) * 2.0
        return (x * a1).max(x * a2)


class Local2Global(nn.Module):
    """Tokens read the feature map: queries projected from tokens, heads split after the projection."""

    def __init__(self, channels, token_dim, heads=2):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(token_dim, channels)
        self.out = nn.Linear(channels, token_dim)
        self.scale = (channels // heads) ** -0.5

    def forward(self, x, tokens):
        b, c, h, w = x.shape
        q = self.to_q(tokens).reshape(b, -1, self.heads, c // self.heads)  # [B, T, h, d]
        kv = x.flatten(2).reshape(b, self.heads, c // self.heads, h * w)    # [B, h, d, P]
        attn = torch.einsum("bthd,bhdp->bhtp", q, kv) * self.scale
        attn = attn.softmax(dim=-1)
        out = torch.einsum("bhtp,bhdp->bthd", attn, kv).reshape(b, -1, c)
        return tokens + self.out(out)


class Global2Local(nn.Module):
    """The feature map reads the tokens: keys/values projected from tokens, einsum over channels."""

    def __init__(self, channels, token_dim, heads=2):
        super().__init__()
        self.heads = heads
        self.to_k = nn.Linear(token_dim, channels)
        self.to_v = nn.Linear(token_dim, channels)

    def forward(self, x, tokens):
        b, c, h, w = x.shape
        d = c // self.heads
        k = self.to_k(tokens).reshape(b, -1, self.heads, d)
        v = self.to_v(tokens).reshape(b, -1, self.heads, d)
        q = x.reshape(b, self.heads, d, h * w)
        attn = torch.einsum("bhdp,bthd->bhpt", q, k).softmax(dim=-1)
        out = torch.einsum("bhpt,bthd->bhdp", attn, v).reshape(b, c, h, w)
        return x + out


class Block(nn.Module):
    def __init__(self, cin, cout, token_dim, stride):
        super().__init__()
        hidden = cin * 3
        self.l2g = Local2Global(cin, token_dim)
        self.former = nn.Sequential(nn.LayerNorm(token_dim), nn.Linear(token_dim, token_dim * 2), nn.GELU(),
                                    nn.Linear(token_dim * 2, token_dim))
        self.expand = nn.Conv2d(cin, hidden, 1, bias=True)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.act1 = DyReLU(hidden, token_dim)
        self.dw = nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.act2 = DyReLU(hidden, token_dim)
        self.project = nn.Conv2d(hidden, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.g2l = Global2Local(cout, token_dim)

    def forward(self, x, tokens):
        tokens = self.l2g(x, tokens)
        tokens = tokens + self.former(tokens)
        y = self.act1(self.bn1(self.expand(x)), tokens)
        y = self.act2(self.bn2(self.dw(y)), tokens)
        y = self.bn3(self.project(y))
        return self.g2l(y, tokens), tokens


class HybridNet(nn.Module):
    def __init__(self, num_classes=10, num_tokens=3, token_dim=32):
        super().__init__()
        self.tokens = nn.Parameter(torch.randn(1, num_tokens, token_dim) * 0.1)
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.Hardswish())
        self.local = nn.Conv2d(8, 8, 3, 1, 1, groups=8)  # a depthwise shortcut: x + dw(x)
        self.blocks = nn.ModuleList([Block(8, 16, token_dim, 2), Block(16, 16, token_dim, 1)])
        self.head = nn.Linear(16 + token_dim, num_classes)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.local(x)
        tokens = self.tokens.expand(x.shape[0], -1, -1)
        for block in self.blocks:
            x, tokens = block(x, tokens)
        pooled = torch.cat([x.mean(dim=(2, 3)), tokens[:, 0]], dim=1)
        return self.head(pooled)


def build(num_classes=10):
    return HybridNet(num_classes)
