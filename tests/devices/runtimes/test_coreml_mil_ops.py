"""Each MIL op the reference interpreter runs, against its documented semantics (numpy formulas, literal values)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mobexport.devices.runtimes.coreml_mil.interpreter import store
from mobexport.devices.runtimes.coreml_mil.ops import OPS, Args, explicit_padding

RNG = np.random.default_rng(0)


def run(op_type, opset=7, **values):
    values = {k: (torch.from_numpy(np.asarray(v)) if isinstance(v, np.ndarray) else v) for k, v in values.items()}
    out = OPS[op_type](Args(op_type, values, opset))
    return tuple(o.numpy() for o in out) if isinstance(out, tuple) else out.numpy()


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def naive_conv2d(x, w, b, stride, pads, dilation=(1, 1), groups=1):
    """Direct cross-correlation over an explicitly padded input ([top, bottom, left, right] pads)."""
    x = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[1]), (pads[2], pads[3])))
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    oh = (h - (kh - 1) * dilation[0] - 1) // stride[0] + 1
    ow = (wd - (kw - 1) * dilation[1] - 1) // stride[1] + 1
    out = np.zeros((n, o, oh, ow), np.float64)
    per_group = o // groups
    for oc in range(o):
        g = oc // per_group
        for i in range(oh):
            for j in range(ow):
                patch = x[:, g * cg:(g + 1) * cg, i * stride[0]:i * stride[0] + (kh - 1) * dilation[0] + 1:dilation[0],
                          j * stride[1]:j * stride[1] + (kw - 1) * dilation[1] + 1:dilation[1]]
                out[:, oc, i, j] = (patch * w[oc]).sum(axis=(1, 2, 3)) + (b[oc] if b is not None else 0)
    return out


# ------------------------------------------------------------------------- padding and convolution

@pytest.mark.parametrize("pad_type, size, kernel, stride, dilation, expected", [
    ("valid", 8, 3, 1, 1, [0, 0]),
    ("same", 8, 3, 1, 1, [1, 1]),
    # The classic mistake: stride 2, odd kernel, even input pads 0 on top and 1 at the bottom (TF SAME),
    # not 1 and 1; both give ceil(8/2) = 4 outputs, shifted by one row.
    ("same", 8, 3, 2, 1, [0, 1]),
    ("same_lower", 8, 3, 2, 1, [1, 0]),
    ("same", 7, 3, 2, 1, [1, 1]),
    ("same", 8, 4, 2, 1, [1, 1]),
    ("same", 8, 2, 2, 1, [0, 0]),
    ("same", 8, 3, 1, 2, [2, 2]),
])
def test_explicit_padding_same_valid(pad_type, size, kernel, stride, dilation, expected):
    pads = explicit_padding(pad_type, [size, size], [kernel, kernel], [stride, stride], [dilation, dilation], None)
    assert pads == expected * 2
    out = (size + sum(expected) - ((kernel - 1) * dilation + 1)) // stride + 1
    if pad_type.startswith("same"):
        assert out == math.ceil(size / stride)


@pytest.mark.parametrize("pad_type, stride, groups, dilation, pads", [
    ("valid", 1, 1, 1, [0, 0, 0, 0]),
    ("same", 2, 1, 1, [0, 1, 0, 1]),
    ("same_lower", 2, 1, 1, [1, 0, 1, 0]),
    ("custom", 2, 2, 1, [2, 0, 1, 3]),
    ("same", 1, 4, 2, [2, 2, 2, 2]),  # depthwise with channel multiplier 2, dilated
])
def test_conv_against_direct_convolution(pad_type, stride, groups, dilation, pads):
    x = rand(1, 4, 8, 8)
    w = rand(8, 4 // groups, 3, 3)
    b = rand(8)
    got = run("conv", x=x, weight=w, bias=b, strides=[stride, stride], pad_type=pad_type,
              pad=np.array(pads if pad_type == "custom" else [0] * 4, np.int32), dilations=[dilation, dilation],
              groups=groups)
    want = naive_conv2d(x, w, b, (stride, stride), pads, (dilation, dilation), groups)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_conv1d_without_bias():
    x, w = rand(1, 2, 9), rand(3, 2, 3)
    got = run("conv", x=x, weight=w, strides=[2], pad_type="same", dilations=[1], groups=1)
    want = naive_conv2d(x[:, :, None], w[:, :, None], None, (1, 2), [0, 0, 1, 1])[:, :, 0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_conv_transpose_scatter_and_crop():
    x, w = rand(1, 2, 3, 3), rand(2, 3, 3, 3)  # weight [C_in, C_out, K, K]
    full = np.zeros((1, 3, 7, 7))  # (3 - 1) * 2 + 3
    for c in range(2):
        for i in range(3):
            for j in range(3):
                full[0, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3] += x[0, c, i, j] * w[c]
    got = run("conv_transpose", x=x, weight=w, strides=[2, 2], pad_type="valid", dilations=[1, 1], groups=1)
    np.testing.assert_allclose(got, full, rtol=1e-4, atol=1e-4)
    same = run("conv_transpose", x=x, weight=w, strides=[2, 2], pad_type="same", dilations=[1, 1], groups=1)
    assert same.shape[-2:] == (6, 6)  # d_in * stride
    np.testing.assert_allclose(same, full[..., 0:6, 0:6], rtol=1e-4, atol=1e-4)
    custom = run("conv_transpose", x=x, weight=w, bias=np.ones(3, np.float32), strides=[2, 2], pad_type="custom",
                 pad=np.array([1, 1, 0, 2], np.int32), dilations=[1, 1], groups=1)
    np.testing.assert_allclose(custom, full[..., 1:6, 0:5] + 1, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------- linear algebra

def test_linear_is_x_weight_transposed_plus_bias():
    x, w, b = rand(2, 5, 4), rand(3, 4), rand(3)
    np.testing.assert_allclose(run("linear", x=x, weight=w, bias=b), x @ w.T + b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(run("linear", x=x, weight=w), x @ w.T, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("tx, ty", [(False, False), (True, False), (False, True), (True, True)])
def test_matmul_transposes_swap_the_last_two_axes(tx, ty):
    x = rand(2, 3, 4, 5) if tx else rand(2, 3, 5, 4)
    y = rand(3, 6, 4) if ty else rand(3, 4, 6)  # broadcast over the leading batch axis
    want = (np.swapaxes(x, -1, -2) if tx else x) @ (np.swapaxes(y, -1, -2) if ty else y)
    got = run("matmul", x=x, y=y, transpose_x=tx, transpose_y=ty)
    assert got.shape == (2, 3, 5, 6)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_matmul_rank1_and_einsum():
    x, y = rand(4), rand(4, 3)
    np.testing.assert_allclose(run("matmul", x=x, y=y, transpose_x=False, transpose_y=False), x @ y, rtol=1e-5)
    a, b = rand(2, 3, 4), rand(2, 4, 5)
    np.testing.assert_allclose(run("einsum", values=[a, b], equation="bij,bjk->bik"), a @ b, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------- normalization

def test_layer_norm_over_a_middle_axis_with_gamma_of_that_axis():
    x, gamma, beta = rand(2, 5, 3), rand(5), rand(5)
    mean = x.mean(axis=1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=1, keepdims=True)
    want = (x - mean) / np.sqrt(var + 1e-3) * gamma[None, :, None] + beta[None, :, None]
    got = run("layer_norm", x=x, axes=[1], gamma=gamma, beta=beta, epsilon=1e-3)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_layer_norm_last_two_axes_and_epsilon_inside_the_root():
    x, gamma = rand(2, 3, 4), rand(3, 4)
    mean = x.mean(axis=(-2, -1), keepdims=True)
    var = ((x - mean) ** 2).mean(axis=(-2, -1), keepdims=True)
    np.testing.assert_allclose(run("layer_norm", x=x, axes=[-2, -1], gamma=gamma, epsilon=1e-5),
                               (x - mean) / np.sqrt(var + 1e-5) * gamma, rtol=1e-4, atol=1e-5)
    # A constant row has zero variance: epsilon inside the root gives exactly 0 (then beta), not nan/inf.
    flat = np.full((1, 4), 3.0, np.float32)
    np.testing.assert_allclose(run("layer_norm", x=flat, axes=[-1], beta=np.full(4, 0.5, np.float32),
                                   epsilon=1e-5), np.full((1, 4), 0.5))
    # Variance 1e-4 with epsilon 1e-4: the scale is 1/sqrt(2e-4), as epsilon is added to Var, not to the std.
    tiny = np.array([[-0.01, 0.01]], np.float32)
    np.testing.assert_allclose(run("layer_norm", x=tiny, axes=[-1], epsilon=1e-4), tiny / math.sqrt(2e-4), rtol=1e-4)


def test_batch_instance_and_l2_norm():
    x = rand(2, 3, 4, 4)
    mean, var, gamma, beta = rand(3), np.abs(rand(3)) + 0.1, rand(3), rand(3)
    c = (1, 3, 1, 1)
    np.testing.assert_allclose(
        run("batch_norm", x=x, mean=mean, variance=var, gamma=gamma, beta=beta, epsilon=1e-3),
        (x - mean.reshape(c)) / np.sqrt(var.reshape(c) + 1e-3) * gamma.reshape(c) + beta.reshape(c), rtol=1e-4,
        atol=1e-5)
    m = x.mean(axis=(2, 3), keepdims=True)
    v = ((x - m) ** 2).mean(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(run("instance_norm", x=x, gamma=gamma, beta=beta, epsilon=1e-5),
                               (x - m) / np.sqrt(v + 1e-5) * gamma.reshape(c) + beta.reshape(c), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(run("l2_norm", x=x, epsilon=1e-6),
                               x / np.sqrt((x ** 2).sum(axis=(1, 2, 3), keepdims=True)), rtol=1e-5)


def test_softmax_and_attention():
    x = rand(2, 3, 5)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(run("softmax", x=x, axis=1), e / e.sum(axis=1, keepdims=True), rtol=1e-5)
    q, k, v = rand(1, 4, 8), rand(1, 6, 8), rand(1, 6, 3)
    mask = np.ones((4, 6), bool)
    mask[:, -1] = False
    logits = q @ k.transpose(0, 2, 1) / math.sqrt(8)
    logits[..., -1] = -np.inf
    p = np.exp(logits - logits.max(-1, keepdims=True))
    np.testing.assert_allclose(run("scaled_dot_product_attention", query=q, key=k, value=v, attn_mask=mask),
                               p / p.sum(-1, keepdims=True) @ v, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------- activations and elementwise

X = np.linspace(-4, 4, 33).astype(np.float32)


@pytest.mark.parametrize("op_type, params, formula", [
    ("relu", {}, lambda x: np.maximum(x, 0)),
    ("relu6", {}, lambda x: np.clip(x, 0, 6)),
    ("sigmoid", {}, lambda x: 1 / (1 + np.exp(-x))),
    ("silu", {}, lambda x: x / (1 + np.exp(-x))),
    ("tanh", {}, np.tanh),
    ("softplus", {}, lambda x: np.log1p(np.exp(x))),
    ("softsign", {}, lambda x: x / (1 + np.abs(x))),
    ("gelu", {"mode": "EXACT"}, lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))),
    ("gelu", {"mode": "TANH_APPROXIMATION"},
     lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))),
    ("gelu", {"mode": "SIGMOID_APPROXIMATION"}, lambda x: x / (1 + np.exp(-1.702 * x))),
    ("sigmoid_hard", {"alpha": 0.25, "beta": 0.4}, lambda x: np.minimum(np.maximum(0.25 * x + 0.4, 0), 1)),
    ("clip", {"alpha": np.float32(-1.5), "beta": np.float32(2.0)}, lambda x: np.clip(x, -1.5, 2.0)),
    ("thresholded_relu", {"alpha": 1.0}, lambda x: np.where(x >= 1.0, x, 0)),
    ("leaky_relu", {"alpha": 0.1}, lambda x: np.where(x >= 0, x, 0.1 * x)),
    ("elu", {"alpha": 0.7}, lambda x: np.where(x > 0, x, 0.7 * (np.exp(x) - 1))),
    ("clamped_relu", {"alpha": 0.2, "beta": 3.0}, lambda x: np.minimum(np.where(x >= 0, x, 0.2 * x), 3.0)),
    ("scaled_tanh", {"alpha": 2.0, "beta": 0.5}, lambda x: 2.0 * np.tanh(0.5 * x)),
    ("linear_activation", {"alpha": 3.0, "beta": -1.0}, lambda x: 3 * x - 1),
    ("abs", {}, np.abs), ("ceil", {}, np.ceil), ("floor", {}, np.floor), ("sign", {}, np.sign),
    ("exp", {}, np.exp), ("exp2", {}, np.exp2), ("sin", {}, np.sin), ("cos", {}, np.cos), ("tan", {}, np.tan),
    ("sinh", {}, np.sinh), ("cosh", {}, np.cosh), ("atan", {}, np.arctan), ("square", {}, np.square),
    ("erf", {}, np.vectorize(math.erf)), ("identity", {}, lambda x: x),
    ("round", {}, np.round),  # halves to even: 0.5 -> 0, as documented
    ("inverse", {"epsilon": 0.5}, lambda x: 1 / (x + 0.5)),
])
def test_elementwise_formula(op_type, params, formula):
    x = X[X != -0.5] if op_type == "inverse" else X
    np.testing.assert_allclose(run(op_type, x=x, **params), formula(x.astype(np.float64)), rtol=1e-5, atol=1e-6)


def test_unary_with_domain_and_epsilon():
    x = np.linspace(0.01, 0.99, 9).astype(np.float32)
    for op_type, fn in [("sqrt", np.sqrt), ("acos", np.arccos), ("asin", np.arcsin), ("atanh", np.arctanh)]:
        np.testing.assert_allclose(run(op_type, x=x), fn(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(run("log", x=x, epsilon=0.5), np.log(x + 0.5), rtol=1e-5)
    np.testing.assert_allclose(run("rsqrt", x=x, epsilon=1e-3), 1 / np.sqrt(x + 1e-3), rtol=1e-5)
    assert run("round", x=np.array([0.5, 1.5, 2.5, -0.5], np.float32)).tolist() == [0, 2, 2, 0]
    assert run("logical_not", x=np.array([True, False])).tolist() == [False, True]


def test_prelu_and_softplus_parametric_are_per_channel():
    x, alpha, beta = rand(1, 3, 2, 2), np.array([0.1, 0.2, 0.3], np.float32), np.array([1, 2, 3], np.float32)
    a = alpha.reshape(1, 3, 1, 1)
    np.testing.assert_allclose(run("prelu", x=x, alpha=alpha), np.where(x >= 0, x, a * x), rtol=1e-6)
    np.testing.assert_allclose(run("softplus_parametric", x=x, alpha=alpha, beta=beta),
                               a * np.log1p(np.exp(beta.reshape(1, 3, 1, 1) * x)), rtol=1e-5)


@pytest.mark.parametrize("op_type, fn", [
    ("add", np.add), ("sub", np.subtract), ("mul", np.multiply), ("real_div", np.divide),
    ("maximum", np.maximum), ("minimum", np.minimum), ("equal", np.equal), ("not_equal", np.not_equal),
    ("greater", np.greater), ("greater_equal", np.greater_equal), ("less", np.less), ("less_equal", np.less_equal),
])
def test_binary_ops_broadcast_like_numpy(op_type, fn):
    x, y = np.round(rand(2, 1, 4)), np.round(rand(3, 1)) + 0.25
    np.testing.assert_allclose(run(op_type, x=x, y=y), fn(x, y), rtol=1e-6)


def test_integer_and_logical_binaries_select_and_cast():
    x, y = np.array([7, -7, 5], np.int32), np.array([2, 2, -3], np.int32)
    assert run("floor_div", x=x, y=y).tolist() == np.floor_divide(x, y).tolist()
    assert run("mod", x=x, y=y).tolist() == np.mod(x, y).tolist()
    assert run("pow", x=np.array([2.0, 3.0], np.float32), y=np.array([3.0, 0.5], np.float32)).tolist() == \
        pytest.approx([8.0, math.sqrt(3)])
    p, q = np.array([True, True, False]), np.array([True, False, False])
    assert run("logical_and", x=p, y=q).tolist() == [True, False, False]
    assert run("logical_or", x=p, y=q).tolist() == [True, True, False]
    assert run("logical_xor", x=p, y=q).tolist() == [False, True, False]
    assert run("select", cond=p, a=np.ones(3, np.float32), b=np.zeros(3, np.float32)).tolist() == [1, 1, 0]
    assert run("cast", x=np.array([1.7, -1.7], np.float32), dtype="int32").tolist() == [1, -1]
    assert run("cast", x=np.array([0.0, 2.0], np.float32), dtype="bool").tolist() == [False, True]


def test_fp16_storage_rounds_and_overflows():
    v = torch.tensor([1.0 + 2 ** -12, 65504.0, 70000.0, -1e6, 1e-8])
    got = store(v, "fp16").tolist()
    assert got[0] == 1.0 and got[1] == 65504.0 and got[2] == math.inf and got[3] == -math.inf and got[4] == 0.0
    assert store(v, "fp32").tolist() == v.tolist()
    assert store(torch.tensor([2.9]), "int32").dtype == torch.int32


# ------------------------------------------------------------------------- reductions

@pytest.mark.parametrize("op_type, fn", [
    ("reduce_sum", np.sum), ("reduce_mean", np.mean), ("reduce_max", np.max), ("reduce_min", np.min),
    ("reduce_prod", np.prod), ("reduce_l1_norm", lambda x, axis, keepdims: np.abs(x).sum(axis, keepdims=keepdims)),
    ("reduce_l2_norm", lambda x, axis, keepdims: np.sqrt((x ** 2).sum(axis, keepdims=keepdims))),
    ("reduce_sum_square", lambda x, axis, keepdims: (x ** 2).sum(axis, keepdims=keepdims)),
    ("reduce_log_sum_exp", lambda x, axis, keepdims: np.log(np.exp(x).sum(axis, keepdims=keepdims))),
    ("reduce_log_sum", lambda x, axis, keepdims: np.log(x.sum(axis, keepdims=keepdims))),
])
@pytest.mark.parametrize("axes, keep", [([1, -1], True), ([0], False), (None, False)])
def test_reductions_axes_and_keep_dims(op_type, fn, axes, keep):
    x = np.abs(rand(2, 3, 4)) + 0.5
    axis = tuple(range(3)) if axes is None else tuple(a % 3 for a in axes)
    np.testing.assert_allclose(run(op_type, x=x, axes=axes, keep_dims=keep), fn(x, axis=axis, keepdims=keep),
                               rtol=1e-5)


def test_reduce_argmax_argmin():
    x = rand(3, 5)
    assert run("reduce_argmax", x=x, axis=1, keep_dims=False).tolist() == x.argmax(1).tolist()
    assert run("reduce_argmin", x=x, axis=0, keep_dims=True).tolist() == [x.argmin(0).tolist()]


# ------------------------------------------------------------------------- pooling and resizing

def test_max_pool_same_stride_2_pads_at_the_end():
    x = rand(1, 2, 6, 6)
    got = run("max_pool", x=x, kernel_sizes=[3, 3], strides=[2, 2], pad_type="same", ceil_mode=False)
    padded = np.pad(x, ((0, 0), (0, 0), (0, 1), (0, 1)), constant_values=-np.inf)  # total pad 1, at the end
    want = np.array([[[[padded[0, c, 2 * i:2 * i + 3, 2 * j:2 * j + 3].max() for j in range(3)] for i in range(3)]
                      for c in range(2)]])
    np.testing.assert_allclose(got, want)


@pytest.mark.parametrize("exclude", [True, False])
def test_avg_pool_padding_in_or_out_of_the_average(exclude):
    x = rand(1, 1, 4, 4)
    got = run("avg_pool", x=x, kernel_sizes=[3, 3], strides=[1, 1], pad_type="custom",
              pad=np.array([1, 1, 1, 1], np.int32), exclude_padding_from_average=exclude, ceil_mode=False)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    ones = np.pad(np.ones_like(x), ((0, 0), (0, 0), (1, 1), (1, 1)))
    want = np.zeros((1, 1, 4, 4))
    for i in range(4):
        for j in range(4):
            total = padded[0, 0, i:i + 3, j:j + 3].sum()
            want[0, 0, i, j] = total / (ones[0, 0, i:i + 3, j:j + 3].sum() if exclude else 9)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_l2_pool_and_upsampling():
    x = rand(1, 1, 4, 4)
    got = run("l2_pool", x=x, kernel_sizes=[2, 2], strides=[2, 2], pad_type="valid")
    want = np.sqrt((x.reshape(1, 1, 2, 2, 2, 2) ** 2).sum(axis=(3, 5)))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    up = run("upsample_nearest_neighbor", x=x, scale_factor_height=2, scale_factor_width=3)
    np.testing.assert_array_equal(up, x.repeat(2, axis=2).repeat(3, axis=3))
    corners = run("upsample_bilinear", x=x, scale_factor_height=2, scale_factor_width=2, align_corners=True)
    assert corners.shape == (1, 1, 8, 8) and corners[0, 0, 0, 0] == x[0, 0, 0, 0] and corners[0, 0, -1, -1] == x[0, 0, -1, -1]
    half = run("upsample_bilinear", x=x, scale_factor_height=2, scale_factor_width=2, align_corners=False,
               half_pixel_centers=True)
    # half-pixel centres: output (1, 1) samples input (0.25, 0.25)
    w = np.array([0.75, 0.25])
    np.testing.assert_allclose(half[0, 0, 1, 1], w @ x[0, 0, :2, :2] @ w, rtol=1e-5)


# ------------------------------------------------------------------------- shapes and layout

def test_reshape_minus_one_and_zero_by_opset():
    x = rand(2, 3, 4)
    assert run("reshape", x=x, shape=[-1, 4]).shape == (6, 4)
    assert run("reshape", opset=7, x=x, shape=[0, -1]).shape == (2, 12)  # iOS16: 0 copies x.shape[i]
    assert run("reshape", opset=8, x=x, shape=[1, 0, -1, 0]).shape == (1, 2, 3, 4)  # iOS17: right-aligned
    np.testing.assert_array_equal(run("reshape", x=x, shape=[4, 6]), x.reshape(4, 6))


def test_transpose_expand_squeeze_flatten():
    x = rand(2, 3, 4)
    np.testing.assert_array_equal(run("transpose", x=x, perm=[2, 0, 1]), x.transpose(2, 0, 1))
    assert run("expand_dims", x=x, axes=[0, -1]).shape == (1, 2, 3, 4, 1)
    assert run("expand_dims", x=x, axes=[1, 3]).shape == (2, 1, 3, 1, 4)
    y = rand(1, 3, 1, 2)
    assert run("squeeze", x=y, axes=[-2]).shape == (1, 3, 2)
    assert run("squeeze", x=y).shape == (3, 2)
    assert run("flatten2d", x=x, axis=2).shape == (6, 4)


def test_concat_stack_split():
    a, b = rand(2, 3), rand(2, 3)
    np.testing.assert_array_equal(run("concat", values=[a, b], axis=1), np.concatenate([a, b], 1))
    inter = run("concat", values=[a, b], axis=1, interleave=True)
    np.testing.assert_array_equal(inter[:, 0::2], a)
    np.testing.assert_array_equal(inter[:, 1::2], b)
    np.testing.assert_array_equal(run("stack", values=[a, b], axis=-1), np.stack([a, b], -1))
    assert run("concat", values=[np.int32(1), np.int32(4)], axis=0).tolist() == [1, 4]  # scalars: one element each
    x = rand(7, 2)
    parts = run("split", x=x, num_splits=3, axis=0)
    assert [p.shape[0] for p in parts] == [3, 3, 1]
    parts = run("split", x=x, split_sizes=[2, 5], axis=0)
    np.testing.assert_array_equal(parts[1], x[2:])


def test_slice_by_index_masks_and_negative_stride():
    x = rand(4, 5, 6)
    got = run("slice_by_index", x=x, begin=[1, 0, 5], end=[3, 4, 0], stride=[1, 2, -2],
              begin_mask=[False, True, False], end_mask=[False, False, True], squeeze_mask=[False, False, False])
    np.testing.assert_array_equal(got, x[1:3, :4:2, 5::-2])
    got = run("slice_by_index", x=x, begin=[2, -3, 0], end=[3, -1, 6], stride=[1, 1, 1],
              begin_mask=[False, False, False], end_mask=[False, False, True], squeeze_mask=[True, False, False])
    np.testing.assert_array_equal(got, x[2, -3:-1, 0:])
    np.testing.assert_array_equal(run("slice_by_size", x=x, begin=[1, 2, 0], size=[2, -1, 3]), x[1:3, 2:, 0:3])


def test_tile_pad_gather():
    x = rand(2, 3)
    np.testing.assert_array_equal(run("tile", x=x, reps=[2, 1]), np.tile(x, (2, 1)))
    np.testing.assert_array_equal(run("pad", x=x, pad=np.array([1, 0, 0, 2], np.int32), mode="constant",
                                      constant_val=7.0), np.pad(x, ((1, 0), (0, 2)), constant_values=7.0))
    np.testing.assert_array_equal(run("pad", x=x, pad=np.array([0, 2], np.int32), mode="reflect"),
                                  np.pad(x, ((0, 0), (0, 2)), mode="reflect"))
    np.testing.assert_array_equal(run("pad", x=x, pad=np.array([1, 1], np.int32), mode="replicate"),
                                  np.pad(x, ((0, 0), (1, 1)), mode="edge"))
    idx = np.array([[2, -1], [0, 1]], np.int32)
    np.testing.assert_array_equal(run("gather", x=x, indices=idx, axis=1), np.take(x, idx % 3, axis=1))
    along = np.array([[0, 2], [1, 1]], np.int32)
    np.testing.assert_array_equal(run("gather_along_axis", x=x, indices=along, axis=1),
                                  np.take_along_axis(x, along, axis=1))


def test_shape_fill_range_cumsum_topk_pixel_shuffle_classify():
    x = rand(1, 8, 2, 2)
    assert run("shape", x=x).tolist() == [1, 8, 2, 2]
    assert run("fill", shape=[2, 2], value=3.0).tolist() == [[3.0, 3.0], [3.0, 3.0]]
    assert run("range_1d", start=1, end=7, step=2).tolist() == [1, 3, 5]
    v = np.array([1.0, 2.0, 3.0], np.float32)
    assert run("cumsum", x=v, axis=0, exclusive=False, reverse=False).tolist() == [1, 3, 6]
    assert run("cumsum", x=v, axis=0, exclusive=True, reverse=True).tolist() == [5, 3, 0]
    values, indices = run("topk", x=np.array([3.0, 1.0, 4.0, 1.5], np.float32), k=2, axis=-1, ascending=False)
    assert values.tolist() == [4.0, 3.0] and indices.tolist() == [2, 0]
    shuffled = run("pixel_shuffle", x=x, upscale_factor=2)
    np.testing.assert_array_equal(shuffled, torch.nn.functional.pixel_shuffle(torch.from_numpy(x), 2).numpy())
    np.testing.assert_array_equal(run("pixel_unshuffle", x=shuffled, downscale_factor=2), x)
    label, scores = run("classify", probabilities=np.array([[0.1, 0.7, 0.2]], np.float32), classes=["a", "b", "c"])
    assert int(label) == 1 and scores.reshape(-1).tolist() == pytest.approx([0.1, 0.7, 0.2])


def test_every_registered_op_is_tested_here():
    """A new op in ops.py needs a test in this file."""
    import inspect
    import sys

    source = inspect.getsource(sys.modules[__name__])
    untested = [name for name in OPS if f'"{name}"' not in source]
    assert untested == []


def test_quantize_dequantize_per_tensor_and_per_axis():
    x = np.array([[-1.0, 0.26, 0.5], [2.0, -3.0, 0.74]], np.float32)
    q = run("quantize", input=x, scale=np.float32(0.5), zero_point=np.int8(1), output_dtype="int8")
    assert q.tolist() == np.clip(np.round(x / 0.5) + 1, -128, 127).tolist() and q.dtype == np.int8
    scale = np.array([0.01, 0.02], np.float32)
    q = run("quantize", input=x, scale=scale, zero_point=np.array([128, 100], np.uint8), axis=0, output_dtype="uint8")
    want = np.clip(np.round(x / scale[:, None]) + np.array([128, 100])[:, None], 0, 255)
    assert q.tolist() == want.tolist() and q.dtype == np.uint8
    back = run("dequantize", input=q, scale=scale, zero_point=np.array([128, 100], np.uint8), axis=0)
    np.testing.assert_allclose(back, (want - np.array([128, 100])[:, None]) * scale[:, None], rtol=1e-6)
