"""``mobexport::token_softmax``: softmax over the token axis of [N, T, P] attention scores.

Mobile<-Former's pixels each attend over a handful of tokens (T <= 6): after
``attention_to_bmm`` (its Mobile<-Former rule) the scores are ``s[n, t, p]`` with the pixels P
last (the feature map's own layout), and the softmax runs over the short
middle axis. No single ATen spelling of that is best everywhere, which is why
it is an op of its own with one lowering per target, each the fastest we
measured there (``benchmarks/studies/passes_benchmark.py --kernels``; 24x56x56 map, T=6,
one thread, best of 180 runs on the 2-core AMD EPYC dev host):

=============  ==========================================  ========  ==============
target         lowering                                    measured  runner-up
=============  ==========================================  ========  ==============
ONNX Runtime   ReduceMax, Sub, Exp, ReduceSum, Div on      0.33 ms   0.50 ms
               axis 1 (the reductions stream over P)                  (Softmax(axis=1), or
                                                                      transposes + Softmax)
XNNPACK        transpose -> last-axis softmax -> transpose  0.74 ms   0.84 ms (unrolled
               (XNNPACK's softmax only takes the last                 max/exp/sum), 1.02 ms
               axis; reductions are not delegated)                    (amax/sum: not delegated)
Core ML        ``softmax(axis=1)`` (MIL takes any axis)     not measurable off macOS
TensorRT       the ONNX lowering                           no GPU here
=============  ==========================================  ========  ==============

Math: ``softmax(s, 1)[n, t, p] = exp(s[n,t,p] - m[n,p]) / sum_u exp(s[n,u,p] - m[n,p])``
with ``m[n, p] = max_u s[n, u, p]`` (subtracting the max keeps ``exp`` finite).
"""

from __future__ import annotations

import torch

aten = torch.ops.aten


@torch.library.custom_op("mobexport::token_softmax", mutates_args=())
def token_softmax(scores: torch.Tensor) -> torch.Tensor:
    """Reference: softmax over dim 1 of [N, T, P] scores."""
    if scores.dim() != 3:
        raise ValueError(f"token_softmax takes [N, T, P] scores, got {tuple(scores.shape)}")
    return torch.softmax(scores, dim=1)


@token_softmax.register_fake
def _(scores: torch.Tensor) -> torch.Tensor:
    torch._check(scores.dim() == 3, lambda: "token_softmax takes [N, T, P] scores")
    return torch.empty_like(scores)


OP = torch.ops.mobexport.token_softmax.default


# --------------------------------------------------------------------------- lowerings


def onnx_translation(scores):
    """ONNX (opset 18): reductions over axis 1, which ONNX Runtime streams over the pixel axis."""
    from onnxscript import opset18 as op

    axis = op.Constant(value_ints=[1])
    shifted = op.Sub(scores, op.ReduceMax(scores, axis, keepdims=1))
    exps = op.Exp(shifted)
    return op.Div(exps, op.ReduceSum(exps, axis, keepdims=1))


def xnnpack_decomposition(scores: torch.Tensor) -> torch.Tensor:
    """ExecuTorch/XNNPACK: its softmax only runs over the last axis, so move T there and back."""
    return aten.transpose.int(aten.softmax.int(aten.transpose.int(scores, 1, 2), -1), 1, 2)


def axis_decomposition(scores: torch.Tensor) -> torch.Tensor:
    """Targets with a softmax over any axis (Core ML's MIL, ExecuTorch's portable kernels)."""
    return aten.softmax.int(scores, 1)


def reductions_decomposition(scores: torch.Tensor) -> torch.Tensor:
    """The ONNX lowering's arithmetic in ATen (max, subtract, exp, sum, divide over dim 1)."""
    exps = aten.exp.default(aten.sub.Tensor(scores, aten.amax.default(scores, [1], True)))
    return aten.div.Tensor(exps, aten.sum.dim_IntList(exps, [1], True))


def unrolled_decomposition(scores: torch.Tensor) -> torch.Tensor:
    """Max and sum over T as T-1 elementwise maximums/adds of [N, 1, P] slices (all XNNPACK-delegable)."""
    tokens = scores.shape[1]
    rows = [aten.slice.Tensor(scores, 1, t, t + 1) for t in range(tokens)]
    peak = rows[0]
    for row in rows[1:]:
        peak = aten.maximum.default(peak, row)
    exps = aten.exp.default(aten.sub.Tensor(scores, peak))
    total = aten.slice.Tensor(exps, 1, 0, 1)
    for t in range(1, tokens):
        total = aten.add.Tensor(total, aten.slice.Tensor(exps, 1, t, t + 1))
    return aten.div.Tensor(exps, total)


# Every spelling the lowerings were chosen from (benchmarks/studies/kernel_lowerings_benchmark.py times them).
CANDIDATES = {
    "reductions": reductions_decomposition,
    "transpose_softmax": xnnpack_decomposition,
    "softmax_axis1": axis_decomposition,
    "unrolled": unrolled_decomposition,
}
