"""MIL operator semantics, one function per op type, after coremltools' MIL operator reference.

Each function takes :class:`Args` (the op's inputs, already evaluated) and
returns one tensor or a tuple of tensors, in the order of the op's outputs.
Tensors are float32/int/bool torch tensors; fp16 rounding of the results is
the interpreter's job, not the op's (see ``interpreter.py``). The docstrings
in ``coremltools/converters/mil/mil/ops/defs/iOS15..iOS18`` are the reference;
where a docstring and coremltools' own shape inference disagree (``same``
padding with a stride above 1), the latter, which matches TensorFlow's
``SAME`` that Core ML implements, wins and the function says so.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

OPS: dict[str, Callable] = {}


def op(*names: str):
    def register(fn):
        for name in names:
            OPS[name] = fn
        return fn

    return register


class Args:
    """An op's evaluated inputs: tensors by name, const parameters as Python values."""

    def __init__(self, op_type: str, values: dict, opset: int = 0):
        self.op_type = op_type
        self.values = values
        self.opset = opset  # the function's spec version (iOS16 = 7, iOS17 = 8, ...)

    def __contains__(self, name: str) -> bool:
        return self.values.get(name) is not None

    def t(self, name: str) -> torch.Tensor:
        value = self.values[name]
        return value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))

    def tensors(self, name: str) -> list[torch.Tensor]:
        return [v if isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v)) for v in self.values[name]]

    def val(self, name: str, default=None):
        """A parameter as a Python scalar, string or list; ``default`` when absent."""
        value = self.values.get(name)
        if value is None:
            return default
        if isinstance(value, torch.Tensor):
            return value.tolist()
        if isinstance(value, np.ndarray):
            return value.tolist()
        return value


def _axes(axes, rank: int) -> list[int]:
    return [a % rank for a in axes]


def _float(t: torch.Tensor) -> torch.Tensor:
    return t if t.is_floating_point() else t.to(torch.float32)


# ---------------------------------------------------------------- convolution, linear algebra

def explicit_padding(pad_type: str, spatial: list[int], kernel: list[int], strides: list[int], dilations: list[int],
                     custom: list[int] | None) -> list[int]:
    """[begin_0, end_0, begin_1, end_1, ...] for a conv/pool ``pad_type``.

    ``same``: the output is ``ceil(d_in / stride)`` and the total padding
    ``max(0, (ceil(d_in/s) - 1) * s + dilated_kernel - d_in)`` is split with the
    odd element at the end (``same_lower``: at the beginning), as coremltools'
    ``aggregated_pad`` and TensorFlow's SAME compute it. (The conv docstring's
    stride-free formula gives the same output size but pads one more row on top
    for an odd kernel, stride 2 and an even input, shifting every output.)
    """
    rank = len(spatial)
    if pad_type == "valid":
        return [0] * (2 * rank)
    if pad_type == "custom":
        return list(custom) if custom is not None else [0] * (2 * rank)
    if pad_type not in ("same", "same_lower"):
        raise ValueError(f"unknown pad_type '{pad_type}'")
    out = []
    for size, k, s, d in zip(spatial, kernel, strides, dilations):
        effective = (k - 1) * d + 1
        total = max(0, (math.ceil(size / s) - 1) * s + effective - size)
        small, large = total // 2, total - total // 2
        out += [small, large] if pad_type == "same" else [large, small]
    return out


def _torch_pad(pads: list[int]) -> list[int]:
    """MIL's [b0, e0, b1, e1, ...] (first dim first) as F.pad's (last dim first) order."""
    pairs = [pads[i:i + 2] for i in range(0, len(pads), 2)]
    return [p for pair in reversed(pairs) for p in pair]


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


@op("conv")
def conv(a: Args):
    x, w = _float(a.t("x")), a.t("weight")
    nd = x.dim() - 2
    strides = a.val("strides", [1] * nd)
    dilations = a.val("dilations", [1] * nd)
    pads = explicit_padding(a.val("pad_type", "valid"), list(x.shape[2:]), list(w.shape[2:]), strides, dilations,
                            a.val("pad"))
    x = F.pad(x, _torch_pad(pads))
    bias = a.t("bias") if "bias" in a else None
    return _CONV[nd](x, w, bias, stride=strides, dilation=dilations, groups=a.val("groups", 1))


@op("conv_transpose")
def conv_transpose(a: Args):
    """``weight`` is [C_in, C_out/groups, *K]; the output is cropped by ``pad`` (``same``: to ``d_in * stride``)."""
    x, w = _float(a.t("x")), a.t("weight")
    nd = x.dim() - 2
    strides = a.val("strides", [1] * nd)
    dilations = a.val("dilations", [1] * nd)
    groups = a.val("groups", 1)
    y = _CONV_T[nd](x, w, None, stride=strides, dilation=dilations, groups=groups)
    pad_type = a.val("pad_type", "valid")
    if pad_type in ("same", "same_lower"):
        pads = []
        for k, s, d in zip(w.shape[2:], strides, dilations):
            total = max(0, (k - 1) * d + 1 - s)
            small, large = total // 2, total - total // 2
            pads += [small, large] if pad_type == "same" else [large, small]
    elif pad_type == "custom":
        pads = a.val("pad", [0] * (2 * nd))
    else:
        pads = [0] * (2 * nd)
    index = [slice(None), slice(None)]
    for i in range(nd):
        index.append(slice(pads[2 * i], y.shape[2 + i] - pads[2 * i + 1]))
    y = y[tuple(index)]
    if "output_shape" in a:
        shape = a.val("output_shape")[-nd:]
        extra = [s - y.shape[2 + i] for i, s in enumerate(shape)]
        if any(e > 0 for e in extra):
            y = F.pad(y, _torch_pad([p for e in extra for p in (0, max(0, e))]))
    if "bias" in a:
        y = y + a.t("bias").view(1, -1, *([1] * nd))
    return y


@op("linear")
def linear(a: Args):
    """``x @ weight.T + bias``, weight [D_out, D_in]."""
    bias = a.t("bias") if "bias" in a else None
    return F.linear(_float(a.t("x")), a.t("weight"), bias)


@op("matmul")
def matmul(a: Args):
    """numpy matmul after swapping the last two axes of x / y when ``transpose_x`` / ``transpose_y``."""
    x, y = a.t("x"), a.t("y")
    if a.val("transpose_x", False) and x.dim() >= 2:
        x = x.transpose(-1, -2)
    if a.val("transpose_y", False) and y.dim() >= 2:
        y = y.transpose(-1, -2)
    return torch.matmul(x, y)


@op("einsum")
def einsum(a: Args):
    return torch.einsum(a.val("equation"), *a.tensors("values"))


# ---------------------------------------------------------------- normalization, softmax

@op("layer_norm")
def layer_norm(a: Args):
    """``gamma * (x - E[x]) / sqrt(Var[x] + epsilon) + beta`` over ``axes`` (all when absent); Var is biased."""
    x = _float(a.t("x"))
    rank = x.dim()
    axes = _axes(a.val("axes", list(range(rank))), rank)
    eps = a.val("epsilon", 1e-5)
    mean = x.mean(dim=axes, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=axes, keepdim=True)
    y = (x - mean) / torch.sqrt(var + eps)
    order = sorted(range(len(axes)), key=lambda i: axes[i])
    shape = [x.shape[i] if i in axes else 1 for i in range(rank)]
    if "gamma" in a:
        y = y * a.t("gamma").permute(order).reshape(shape)
    if "beta" in a:
        y = y + a.t("beta").permute(order).reshape(shape)
    return y


@op("batch_norm")
def batch_norm(a: Args):
    """Per channel (axis 1): ``(x - mean) / sqrt(variance + epsilon) * gamma + beta``."""
    x = _float(a.t("x"))
    shape = [1, -1] + [1] * (x.dim() - 2)
    y = (x - a.t("mean").view(shape)) / torch.sqrt(a.t("variance").view(shape) + a.val("epsilon", 1e-5))
    if "gamma" in a:
        y = y * a.t("gamma").view(shape)
    if "beta" in a:
        y = y + a.t("beta").view(shape)
    return y


@op("instance_norm")
def instance_norm(a: Args):
    """Per sample and channel, over the spatial axes (2...)."""
    x = _float(a.t("x"))
    axes = list(range(2, x.dim()))
    mean = x.mean(dim=axes, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=axes, keepdim=True)
    y = (x - mean) / torch.sqrt(var + a.val("epsilon", 1e-5))
    shape = [1, -1] + [1] * (x.dim() - 2)
    if "gamma" in a:
        y = y * a.t("gamma").view(shape)
    if "beta" in a:
        y = y + a.t("beta").view(shape)
    return y


@op("l2_norm")
def l2_norm(a: Args):
    """``x / sqrt(max(sum(x^2), epsilon))`` over ``axes`` (iOS17) or all axes but the batch (iOS15)."""
    x = _float(a.t("x"))
    axes = _axes(a.val("axes", list(range(1, x.dim()))), x.dim())
    return x / torch.sqrt(torch.clamp((x * x).sum(dim=axes, keepdim=True), min=a.val("epsilon", 1e-6)))


@op("softmax")
def softmax(a: Args):
    return torch.softmax(_float(a.t("x")), dim=a.val("axis", -1))


@op("scaled_dot_product_attention")
def scaled_dot_product_attention(a: Args):
    """``softmax(Q K^T / sqrt(d) + mask) V``; a bool mask keeps the True positions."""
    q, k, v = a.t("query"), a.t("key"), a.t("value")
    logits = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    if "attn_mask" in a:
        mask = a.t("attn_mask")
        logits = logits.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else logits + mask
    return torch.matmul(torch.softmax(logits, dim=-1), v)


# ---------------------------------------------------------------- activations

@op("relu")
def relu(a: Args):
    return torch.relu(a.t("x"))


@op("relu6")
def relu6(a: Args):
    return torch.clamp(a.t("x"), 0.0, 6.0)


@op("sigmoid")
def sigmoid(a: Args):
    return torch.sigmoid(a.t("x"))


@op("silu")
def silu(a: Args):
    return F.silu(a.t("x"))


@op("tanh")
def tanh(a: Args):
    return torch.tanh(a.t("x"))


@op("softplus")
def softplus(a: Args):
    return F.softplus(a.t("x"))


@op("softsign")
def softsign(a: Args):
    x = a.t("x")
    return x / (1 + x.abs())


@op("gelu")
def gelu(a: Args):
    """``EXACT`` 0.5x(1+erf(x/sqrt 2)); ``TANH_APPROXIMATION``; ``SIGMOID_APPROXIMATION`` x*sigmoid(1.702x)."""
    x = a.t("x")
    mode = a.val("mode", "EXACT")
    if mode == "EXACT":
        return 0.5 * x * (1 + torch.erf(x / math.sqrt(2.0)))
    if mode == "TANH_APPROXIMATION":
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    if mode == "SIGMOID_APPROXIMATION":
        return x * torch.sigmoid(1.702 * x)
    raise ValueError(f"unknown gelu mode '{mode}'")


@op("sigmoid_hard")
def sigmoid_hard(a: Args):
    """``min(max(alpha * x + beta, 0), 1)`` (defaults alpha 0.2, beta 0.5)."""
    return torch.clamp(a.val("alpha", 0.2) * a.t("x") + a.val("beta", 0.5), 0.0, 1.0)


@op("clip")
def clip(a: Args):
    """``min(max(x, alpha), beta)``."""
    return torch.minimum(torch.maximum(a.t("x"), a.t("alpha")), a.t("beta"))


@op("thresholded_relu")
def thresholded_relu(a: Args):
    """``x`` where ``x >= alpha``, else 0."""
    x = a.t("x")
    return torch.where(x >= a.val("alpha", 1.0), x, torch.zeros_like(x))


@op("leaky_relu")
def leaky_relu(a: Args):
    x = a.t("x")
    return torch.where(x >= 0, x, a.val("alpha", 0.01) * x)


@op("elu")
def elu(a: Args):
    x = a.t("x")
    return torch.where(x > 0, x, a.val("alpha", 1.0) * (torch.exp(x) - 1))


@op("prelu")
def prelu(a: Args):
    """Per channel (axis 1) ``alpha``."""
    x = a.t("x")
    alpha = a.t("alpha").view(1, -1, *([1] * (x.dim() - 2)))
    return torch.where(x >= 0, x, alpha * x)


@op("clamped_relu")
def clamped_relu(a: Args):
    """``min(beta, x)`` for x >= 0, ``min(beta, alpha * x)`` otherwise."""
    x = a.t("x")
    beta = a.val("beta", 6.0)
    return torch.clamp(torch.where(x >= 0, x, a.val("alpha") * x), max=beta)


@op("scaled_tanh")
def scaled_tanh(a: Args):
    return a.val("alpha", 1.0) * torch.tanh(a.val("beta", 1.0) * a.t("x"))


@op("linear_activation")
def linear_activation(a: Args):
    return a.val("alpha") * a.t("x") + a.val("beta", 0.0)


@op("softplus_parametric")
def softplus_parametric(a: Args):
    x = a.t("x")
    shape = [1, -1] + [1] * (x.dim() - 2)
    return a.t("alpha").view(shape) * torch.log1p(torch.exp(a.t("beta").view(shape) * x))


# ---------------------------------------------------------------- elementwise

_UNARY = {
    "abs": torch.abs, "acos": torch.acos, "asin": torch.asin, "atan": torch.atan, "atanh": torch.atanh,
    "ceil": torch.ceil, "cos": torch.cos, "cosh": torch.cosh, "erf": torch.erf, "exp": torch.exp,
    "exp2": torch.exp2, "floor": torch.floor, "sign": torch.sign, "sin": torch.sin, "sinh": torch.sinh,
    "sqrt": torch.sqrt, "square": torch.square, "tan": torch.tan, "logical_not": torch.logical_not,
    "identity": lambda x: x,
}
for _name, _fn in _UNARY.items():
    OPS[_name] = (lambda fn: lambda a: fn(a.t("x")))(_fn)


@op("round")
def round_(a: Args):
    """Nearest integer, halves to even (the reference: ``0.5`` rounds to ``0``)."""
    return torch.round(a.t("x"))


@op("inverse")
def inverse(a: Args):
    """``1 / (x + epsilon)``, epsilon 1e-4 by default."""
    return 1.0 / (a.t("x") + a.val("epsilon", 1e-4))


@op("log")
def log(a: Args):
    """``log(x + epsilon)``, epsilon 1e-45 by default."""
    return torch.log(a.t("x") + a.val("epsilon", 1e-45))


@op("rsqrt")
def rsqrt(a: Args):
    """``1 / sqrt(x + epsilon)``, epsilon 1e-12 by default."""
    return torch.rsqrt(a.t("x") + a.val("epsilon", 1e-12))


_BINARY = {
    "add": torch.add, "sub": torch.sub, "mul": torch.mul, "maximum": torch.maximum, "minimum": torch.minimum,
    "pow": torch.pow, "equal": torch.eq, "not_equal": torch.ne, "greater": torch.gt, "greater_equal": torch.ge,
    "less": torch.lt, "less_equal": torch.le, "logical_and": torch.logical_and, "logical_or": torch.logical_or,
    "logical_xor": torch.logical_xor,
}
for _name, _fn in _BINARY.items():
    OPS[_name] = (lambda fn: lambda a: fn(a.t("x"), a.t("y")))(_fn)


@op("real_div")
def real_div(a: Args):
    return _float(a.t("x")) / a.t("y")


@op("floor_div")
def floor_div(a: Args):
    return torch.div(a.t("x"), a.t("y"), rounding_mode="floor")


@op("mod")
def mod(a: Args):
    return torch.remainder(a.t("x"), a.t("y"))


@op("select")
def select(a: Args):
    return torch.where(a.t("cond").to(torch.bool), a.t("a"), a.t("b"))


_CAST = {"fp16": torch.float32, "fp32": torch.float32, "fp64": torch.float32, "int32": torch.int32,
         "int16": torch.int16, "int8": torch.int8, "uint8": torch.uint8, "bool": torch.bool}


@op("cast")
def cast(a: Args):
    """To ``dtype``; fp16 storage is emulated by the interpreter's rounding of fp16 outputs. Floats -> ints truncate."""
    dtype = a.val("dtype")
    if dtype not in _CAST:
        raise ValueError(f"cast to '{dtype}' is not interpreted")
    return a.t("x").to(_CAST[dtype])


# ---------------------------------------------------------------- reductions

def _reduce(fn):
    def run(a: Args):
        x = a.t("x")
        axes = a.val("axes")
        axes = list(range(x.dim())) if axes is None else _axes(axes, x.dim())
        return fn(x, axes, bool(a.val("keep_dims", False)))

    return run


_REDUCE = {
    "reduce_sum": lambda x, d, k: x.sum(dim=d, keepdim=k),
    "reduce_mean": lambda x, d, k: _float(x).mean(dim=d, keepdim=k),
    "reduce_max": lambda x, d, k: x.amax(dim=d, keepdim=k),
    "reduce_min": lambda x, d, k: x.amin(dim=d, keepdim=k),
    "reduce_prod": lambda x, d, k: _prod(x, d, k),
    "reduce_l1_norm": lambda x, d, k: x.abs().sum(dim=d, keepdim=k),
    "reduce_l2_norm": lambda x, d, k: torch.sqrt((x * x).sum(dim=d, keepdim=k)),
    "reduce_sum_square": lambda x, d, k: (x * x).sum(dim=d, keepdim=k),
    "reduce_log_sum": lambda x, d, k: torch.log(x.sum(dim=d, keepdim=k)),
    "reduce_log_sum_exp": lambda x, d, k: torch.logsumexp(x, dim=d, keepdim=k),
}
for _name, _fn in _REDUCE.items():
    OPS[_name] = _reduce(_fn)


def _prod(x, dims, keep):
    for d in sorted(dims, reverse=True):
        x = x.prod(dim=d, keepdim=keep)
    return x


@op("reduce_argmax", "reduce_argmin")
def reduce_arg(a: Args):
    x = a.t("x")
    fn = torch.argmax if a.op_type == "reduce_argmax" else torch.argmin
    return fn(x, dim=a.val("axis", -1), keepdim=bool(a.val("keep_dims", False))).to(torch.int32)


# ---------------------------------------------------------------- pooling, resizing

def _pool_pads(a: Args, x: torch.Tensor, kernel: list[int], strides: list[int]) -> list[int]:
    return explicit_padding(a.val("pad_type", "valid"), list(x.shape[2:]), kernel, strides, [1] * len(kernel),
                            a.val("pad"))


@op("max_pool")
def max_pool(a: Args):
    x = _float(a.t("x"))
    kernel = a.val("kernel_sizes")
    strides = a.val("strides", [1] * len(kernel))
    x = F.pad(x, _torch_pad(_pool_pads(a, x, kernel, strides)), value=float("-inf"))
    pool = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[len(kernel)]
    return pool(x, kernel, strides, ceil_mode=bool(a.val("ceil_mode", False)))


@op("avg_pool")
def avg_pool(a: Args):
    """Sum over the window / (its unpadded element count if ``exclude_padding_from_average``, else its size)."""
    x = _float(a.t("x"))
    kernel = a.val("kernel_sizes")
    strides = a.val("strides", [1] * len(kernel))
    pads = _torch_pad(_pool_pads(a, x, kernel, strides))
    ceil_mode = bool(a.val("ceil_mode", False))
    pool = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[len(kernel)]
    window = math.prod(kernel)

    def sums(t):
        return pool(F.pad(t, pads), kernel, strides, ceil_mode=ceil_mode, count_include_pad=True) * window \
            if len(kernel) == 1 else pool(F.pad(t, pads), kernel, strides, ceil_mode=ceil_mode,
                                          count_include_pad=True, divisor_override=1)

    total = sums(x)
    if a.val("exclude_padding_from_average", False):
        return total / sums(torch.ones_like(x[:1, :1]))
    return total / window


@op("l2_pool")
def l2_pool(a: Args):
    x = _float(a.t("x"))
    kernel = a.val("kernel_sizes")
    strides = a.val("strides", [1] * len(kernel))
    pads = _torch_pad(_pool_pads(a, x, kernel, strides))
    pool = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[len(kernel)]
    return torch.sqrt(pool(F.pad(x * x, pads), kernel, strides) * math.prod(kernel))


@op("upsample_nearest_neighbor")
def upsample_nearest_neighbor(a: Args):
    """Output index i reads input ``floor(i / scale)``."""
    x = _float(a.t("x"))
    sh, sw = a.val("scale_factor_height", 1), a.val("scale_factor_width", 1)
    h, w = x.shape[-2], x.shape[-1]
    rows = torch.clamp(torch.floor(torch.arange(int(h * sh)) / sh).long(), max=h - 1)
    cols = torch.clamp(torch.floor(torch.arange(int(w * sw)) / sw).long(), max=w - 1)
    return x[..., rows, :][..., cols]


@op("upsample_bilinear")
def upsample_bilinear(a: Args):
    x = _float(a.t("x"))
    size = (int(x.shape[-2] * a.val("scale_factor_height", 1)), int(x.shape[-1] * a.val("scale_factor_width", 1)))
    align = bool(a.val("align_corners", False))
    half_pixel = bool(a.val("half_pixel_centers", not align))
    if not align and not half_pixel:
        raise ValueError("upsample_bilinear without align_corners or half_pixel_centers is not interpreted")
    return F.interpolate(x, size=size, mode="bilinear", align_corners=align)


# ---------------------------------------------------------------- shapes and layout

@op("reshape")
def reshape(a: Args):
    """``-1`` is inferred; ``0`` copies x's dimension (aligned from the left before iOS17, from the right after)."""
    x = a.t("x")
    shape = [int(s) for s in a.val("shape")]
    if 0 in shape:
        if a.opset >= 8:
            offset = x.dim() - len(shape)
            shape = [(x.shape[i + offset] if 0 <= i + offset < x.dim() else 1) if s == 0 else s
                     for i, s in enumerate(shape)]
        else:
            shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return x.reshape(shape)


@op("transpose")
def transpose(a: Args):
    return a.t("x").permute(a.val("perm"))


@op("expand_dims")
def expand_dims(a: Args):
    """Axes are positions in the output (negative from its end), inserted in increasing order."""
    x = a.t("x")
    rank = x.dim() + len(a.val("axes"))
    for axis in sorted(ax % rank for ax in a.val("axes")):
        x = x.unsqueeze(axis)
    return x


@op("squeeze")
def squeeze(a: Args):
    x = a.t("x")
    axes = a.val("axes")
    if axes is None:
        return x.reshape([s for s in x.shape if s != 1])
    drop = set(_axes(axes, x.dim()))
    return x.reshape([s for i, s in enumerate(x.shape) if i not in drop])


@op("flatten2d")
def flatten2d(a: Args):
    x = a.t("x")
    axis = a.val("axis", 1) % (x.dim() + 1) if a.val("axis", 1) < 0 else a.val("axis", 1)
    return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))


@op("concat")
def concat(a: Args):
    """Along ``axis``; ``interleave`` takes one slice from each input in turn (equal shapes)."""
    values = a.tensors("values")
    axis = a.val("axis")
    if values[0].dim() == 0:  # scalars (shape arithmetic): each counts as one element, as in coremltools
        return torch.stack(values)
    if a.val("interleave", False):
        axis = axis % values[0].dim()
        stacked = torch.stack(values, dim=axis + 1)
        shape = list(values[0].shape)
        shape[axis] *= len(values)
        return stacked.reshape(shape)
    return torch.cat(values, dim=axis)


@op("stack")
def stack(a: Args):
    return torch.stack(a.tensors("values"), dim=a.val("axis"))


@op("split")
def split(a: Args):
    x = a.t("x")
    axis = a.val("axis")
    sizes = a.val("split_sizes")
    if sizes is None:
        n = a.val("num_splits")
        sizes = [math.ceil(x.shape[axis] / n)] * n
        sizes[-1] = x.shape[axis] - sum(sizes[:-1])
    return tuple(torch.split(x, sizes, dim=axis))


@op("slice_by_index")
def slice_by_index(a: Args):
    """Python-style slices per axis; ``begin_mask``/``end_mask`` drop begin/end, ``squeeze_mask`` indexes at begin."""
    x = a.t("x")
    rank = x.dim()
    begin = a.val("begin")
    end = a.val("end")
    stride = a.val("stride", [1] * rank)
    begin_mask = a.val("begin_mask", [False] * rank)
    end_mask = a.val("end_mask", [False] * rank)
    squeeze_mask = a.val("squeeze_mask", [False] * rank)
    index = []
    for i in range(rank):
        if squeeze_mask[i]:
            index.append(int(begin[i]))
            continue
        index.append(slice(None if begin_mask[i] else int(begin[i]), None if end_mask[i] else int(end[i]),
                           int(stride[i])))
    return torch.from_numpy(np.ascontiguousarray(x.numpy()[tuple(index)]))


@op("slice_by_size")
def slice_by_size(a: Args):
    x = a.t("x")
    index = tuple(slice(b, None if s == -1 else b + s) for b, s in zip(a.val("begin"), a.val("size")))
    return x[index]


@op("tile")
def tile(a: Args):
    return a.t("x").repeat(a.val("reps"))


@op("pad")
def pad(a: Args):
    """[b, e] pairs for the last len(pad)/2 axes; ``constant``, ``reflect`` or ``replicate``."""
    x = _float(a.t("x"))
    pads = [int(p) for p in a.val("pad")]
    mode = a.val("mode", "constant")
    torch_pads = _torch_pad(pads)
    if mode == "constant":
        return F.pad(x, torch_pads, value=a.val("constant_val", 0.0))
    return F.pad(x, torch_pads, mode={"reflect": "reflect", "replicate": "replicate"}[mode])


@op("gather")
def gather(a: Args):
    """``x`` indexed by ``indices`` along ``axis`` (negative indices count from the end), batch_dims 0."""
    x, indices = a.t("x"), a.t("indices").long()
    axis = a.val("axis", 0) % x.dim()
    if a.val("batch_dims", 0):
        raise ValueError("gather with batch_dims is not interpreted")
    indices = torch.where(indices < 0, indices + x.shape[axis], indices)
    flat = torch.index_select(x, axis, indices.reshape(-1))
    return flat.reshape(list(x.shape[:axis]) + list(indices.shape) + list(x.shape[axis + 1:]))


@op("gather_along_axis")
def gather_along_axis(a: Args):
    x, indices = a.t("x"), a.t("indices").long()
    axis = a.val("axis", 0) % x.dim()
    indices = torch.where(indices < 0, indices + x.shape[axis], indices)
    return torch.gather(x, axis, indices)


@op("shape")
def shape(a: Args):
    return torch.tensor(list(a.t("x").shape), dtype=torch.int32)


@op("fill")
def fill(a: Args):
    return torch.full([int(s) for s in a.val("shape")], a.val("value", 0.0))


@op("range_1d")
def range_1d(a: Args):
    return torch.arange(a.val("start"), a.val("end"), a.val("step"))


@op("cumsum")
def cumsum(a: Args):
    x = a.t("x")
    axis = a.val("axis", 0)
    exclusive, reverse = a.val("exclusive", False), a.val("reverse", False)
    if reverse:
        x = x.flip(axis)
    y = x.cumsum(dim=axis)
    if exclusive:
        y = y - x
    return y.flip(axis) if reverse else y


@op("topk")
def topk(a: Args):
    values, indices = torch.topk(a.t("x"), a.val("k", 1), dim=a.val("axis", -1), largest=not a.val("ascending", False))
    return values, indices.to(torch.int32)


@op("pixel_shuffle")
def pixel_shuffle(a: Args):
    return F.pixel_shuffle(a.t("x"), a.val("upscale_factor"))


@op("pixel_unshuffle")
def pixel_unshuffle(a: Args):
    return F.pixel_unshuffle(a.t("x"), a.val("downscale_factor"))


@op("classify")
def classify(a: Args):
    """A classifier's (label of the argmax, scores); the scores stand for the label -> score dictionary."""
    scores = a.t("probabilities")
    return torch.argmax(scores.reshape(-1)), scores


# ---------------------------------------------------------------- activation quantization (iOS17)

def _per_axis(a: Args, name: str, x: torch.Tensor, default: float) -> torch.Tensor:
    """A scalar or a vector along ``axis``, broadcast to x's rank."""
    if name not in a:
        return torch.tensor(default)
    value = a.t(name).to(torch.float32)
    if value.dim() == 0 or value.numel() == 1:
        return value.reshape(())
    shape = [1] * x.dim()
    shape[a.val("axis", -1) % x.dim()] = -1
    return value.reshape(shape)


@op("quantize")
def quantize(a: Args):
    """``clip(round(input / scale) + zero_point)`` to the int8/uint8 range (rounding halves to even)."""
    x = _float(a.t("input"))
    low, high = (-128, 127) if a.val("output_dtype") == "int8" else (0, 255)
    q = torch.round(x / _per_axis(a, "scale", x, 1.0)) + _per_axis(a, "zero_point", x, 0.0)
    return torch.clamp(q, low, high).to(torch.int8 if low < 0 else torch.uint8)


@op("dequantize")
def dequantize(a: Args):
    """``(input - zero_point) * scale``."""
    q = a.t("input").to(torch.float32)
    return (q - _per_axis(a, "zero_point", q, 0.0)) * _per_axis(a, "scale", q, 1.0)
