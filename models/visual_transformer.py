"""Visual Transformer on a ResNet trunk (Wu et al., "Visual Transformers: Token-based
Image Representation and Processing for Computer Vision", 2020): VT-ResNet-18/34.

Why it is in the zoo: the model where the transformer runs on 16 *semantic*
tokens instead of pixels, so its attention cost is nearly independent of the
input size; and a graph with attention whose softmax runs over the spatial
axis (tokenizer) as well as over tokens (projector, transformer).

Architecture (paper, Sec. 3 and Table 8): a ResNet whose stage 5 (``layer4``)
is replaced by the same number of VT modules (2 for R18, 3 for R34):

* filter-based tokenizer (first module): ``A = softmax_HW(X W_A)``,
  ``T = A^T X`` -- one spatial attention map per token;
* recurrent tokenizer (later modules): the filters come from the previous
  tokens, ``W_R = T_in W_{T->R}``, ``T = softmax_HW(X W_R)^T X``;
* transformer on tokens: ``T' = T + softmax((T K)(T Q)^T) T``,
  ``T_out = T' + ReLU(T' F1) F2``;
* projector: ``X_out = X + softmax_L((X W_Q)(T W_K)^T) T``, which feeds the
  next module's tokenizer;
* head: mean over the 16 output tokens -> Linear.

There is no official release. Inferred here, and why:

* The VT stage takes ``layer3``'s output as is (256 channels at H/16, 14x14
  at 224): ``layer4``'s stride-2 downsampling is dropped (the tokens, not the
  grid, carry the stage's capacity) and pixels keep 256 channels.
* Tokens have 1024 channels (``token_dim``; the reimplementation value in
  ``shared/spec/models.md``); the tokenizers lift ``A^T X`` from 256 to 1024
  channels (``tokenizer.value``: applied after pooling, which is the same map as
  lifting every pixel first, at 1/12 of the MACs), and the projector maps tokens
  back to 256 channels (``projector.value``), which the paper's formula leaves
  implicit since it writes one width for both.
* ``K``, ``Q`` project to ``attn_dim = 512`` (half the token width); no
  ``1/sqrt(d)`` scale, no normalization and no biases inside the VT modules,
  as the formulas are written; the classifier has a bias.
* The last module has no projector: classification reads its tokens, so the
  projector's feature map would be dead weight.
* ``ffn_dim`` (the inner width of ``F1``/``F2``) is fitted per variant:
  1088 for R18, 704 for R34. Table 8 cannot be met by one module design: from
  R18 to R34 the trunk grows by 5.39M params and one VT module is added, yet
  the table grows by only 7.5M, so that module is about 2.1M params and
  48M MACs, while R18's two modules plus the head take 8.9M (about 3.9M per
  module). ``ffn_dim`` is the width that leaves every interface (16 tokens of
  1024 channels, 256-channel pixels, 512-wide attention) as above.

Keys: the trunk is :class:`models.resnet.ResNetTrunk`, so ``conv1``, ``bn1``,
``layer1..layer3`` are timm's ResNet keys and a timm ResNet checkpoint's trunk
loads by name; ours are ``vt.<i>.tokenizer.{filters|token_to_filters,value}``,
``vt.<i>.transformer.{key,query,ffn1,ffn2}``,
``vt.<i>.projector.{query,key,value}``, and ``head``.

Rewrite-relevant structure: every VT product is a plain ``matmul`` of
activations or a bias-free ``linear``; softmaxes run over three different axes
(pixels in the tokenizer, tokens in transformer and projector); nothing in the
VT stage depends on the input size except the pixel count, so one graph serves
every resolution.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .registry import register_model
from .resnet import RESNET_LAYERS, ResNetTrunk
from .spec import ModelSpec, ResolutionRange

NUM_TOKENS = 16
TOKEN_DIM = 1024
ATTN_DIM = 512
CHECKPOINT_FORMAT = "mobexport:vt_resnet (trunk in timm resnet keys)"
# Trunk stride is 16 (layer4's downsampling is gone); at 64 the H/16 grid has
# 4x4 = 16 pixels, as many as there are tokens.
RESOLUTIONS = ResolutionRange(min=64, max=1024, stride=16)


# --------------------------------------------------------------------------- blocks
# Shapes: pixels x (B, HW, C), tokens t (B, L, CT).


class FilterTokenizer(nn.Module):
    """``T = softmax_HW(X W_A)^T X``, lifted to the token width."""

    def __init__(self, channels: int, token_dim: int, num_tokens: int):
        super().__init__()
        self.filters = nn.Linear(channels, num_tokens, bias=False)  # W_A
        self.value = nn.Linear(channels, token_dim, bias=False)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor | None = None) -> torch.Tensor:
        attn = self.filters(x).softmax(dim=1)  # (B, HW, L): each token's map sums to 1 over pixels
        return self.value(attn.transpose(1, 2) @ x)


class RecurrentTokenizer(nn.Module):
    """``W_R = T_in W_{T->R}``; ``T = softmax_HW(X W_R)^T X``, lifted to the token width."""

    def __init__(self, channels: int, token_dim: int):
        super().__init__()
        self.token_to_filters = nn.Linear(token_dim, channels, bias=False)  # W_{T->R}
        self.value = nn.Linear(channels, token_dim, bias=False)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        filters = self.token_to_filters(tokens)  # (B, L, C): one filter per previous token
        attn = (x @ filters.transpose(1, 2)).softmax(dim=1)  # (B, HW, L)
        return self.value(attn.transpose(1, 2) @ x)


class TokenTransformer(nn.Module):
    """``T' = T + softmax((TK)(TQ)^T) T``; ``T_out = T' + ReLU(T' F1) F2``."""

    def __init__(self, token_dim: int, attn_dim: int, ffn_dim: int):
        super().__init__()
        self.key = nn.Linear(token_dim, attn_dim, bias=False)
        self.query = nn.Linear(token_dim, attn_dim, bias=False)
        self.ffn1 = nn.Linear(token_dim, ffn_dim, bias=False)
        self.ffn2 = nn.Linear(ffn_dim, token_dim, bias=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        attn = (self.key(t) @ self.query(t).transpose(1, 2)).softmax(dim=-1)
        t = t + attn @ t
        return t + self.ffn2(torch.relu(self.ffn1(t)))


class Projector(nn.Module):
    """``X_out = X + softmax_L((X W_Q)(T W_K)^T) (T W_V)``: tokens written back to pixels."""

    def __init__(self, channels: int, token_dim: int):
        super().__init__()
        self.query = nn.Linear(channels, channels, bias=False)
        self.key = nn.Linear(token_dim, channels, bias=False)
        self.value = nn.Linear(token_dim, channels, bias=False)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        attn = (self.query(x) @ self.key(tokens).transpose(1, 2)).softmax(dim=-1)  # (B, HW, L)
        return x + attn @ self.value(tokens)


class VTModule(nn.Module):
    """Tokenizer -> transformer -> (projector); maps (pixels, tokens) to (pixels, tokens)."""

    def __init__(self, channels: int, token_dim: int, attn_dim: int, ffn_dim: int, num_tokens: int,
                 first: bool, project: bool):
        super().__init__()
        if first:
            self.tokenizer = FilterTokenizer(channels, token_dim, num_tokens)
        else:
            self.tokenizer = RecurrentTokenizer(channels, token_dim)
        self.transformer = TokenTransformer(token_dim, attn_dim, ffn_dim)
        self.projector = Projector(channels, token_dim) if project else None

    def forward(self, x: torch.Tensor, tokens: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.transformer(self.tokenizer(x, tokens))
        if self.projector is not None:
            x = self.projector(x, tokens)
        return x, tokens


# --------------------------------------------------------------------------- model


class VTResNet(ResNetTrunk):
    """ResNet stem + layer1..layer3 (timm keys), then VT modules (``vt.*``) and ``head``."""

    classifier_prefix = "head"

    def __init__(
        self,
        depth: int,
        ffn_dim: int,
        num_classes: int = 1000,
        num_tokens: int = NUM_TOKENS,
        token_dim: int = TOKEN_DIM,
        attn_dim: int = ATTN_DIM,
    ):
        layers = RESNET_LAYERS[depth]
        super().__init__(layers[:3])
        self.num_tokens = num_tokens
        n = layers[3]  # as many VT modules as layer4 had blocks
        self.vt = nn.ModuleList(
            VTModule(self.out_channels, token_dim, attn_dim, ffn_dim, num_tokens, first=i == 0, project=i < n - 1)
            for i in range(n)
        )
        self.head = nn.Linear(token_dim, num_classes)
        for m in [*self.vt.modules(), self.head]:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Image (B, 3, H, W) -> the last module's tokens (B, num_tokens, token_dim)."""
        x = self.forward_features(x).flatten(2).transpose(1, 2)  # (B, HW, C)
        tokens = None
        for module in self.vt:
            x, tokens = module(x, tokens)
        return tokens

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_tokens(x).mean(dim=1))


# --------------------------------------------------------------------------- builder


def _spec(depth: int, params: float, macs: float, top1: float) -> ModelSpec:
    return ModelSpec(
        name=f"vt_resnet{depth}",
        family="visual_transformer",
        default_resolution=224,
        reference_params=params,
        reference_macs=macs,
        checkpoint_format=CHECKPOINT_FORMAT,
        resolutions=RESOLUTIONS,
        reference_top1=top1,
        description=(
            f"VT-ResNet-{depth}: ResNet-{depth} stem and stages 1-3, then {RESNET_LAYERS[depth][3]} VT modules "
            f"(16 tokens x 1024) on the stride-16 map; widths inferred to match VT paper Table 8 (no release). "
            "Any multiple of 16 in 64..1024; no resolution-dependent parameters."
        ),
    )


# --------------------------------------------------------------------------- variants


@register_model(_spec(18, 11.7e6, 1.569e9, 76.8))
def vt_resnet18(num_classes: int = 1000, resolution: int | None = None, **kwargs) -> nn.Module:
    """VT-ResNet-18 (Table 8: 11.7M params, 1.569G MACs, 76.8 top-1)."""
    return VTResNet(18, ffn_dim=1088, num_classes=num_classes, **kwargs)


@register_model(_spec(34, 19.2e6, 3.236e9, 79.9))
def vt_resnet34(num_classes: int = 1000, resolution: int | None = None, **kwargs) -> nn.Module:
    """VT-ResNet-34 (Table 8: 19.2M params, 3.236G MACs, 79.9 top-1)."""
    return VTResNet(34, ffn_dim=704, num_classes=num_classes, **kwargs)
