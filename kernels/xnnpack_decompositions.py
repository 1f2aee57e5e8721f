"""ATen ops ExecuTorch's XNNPACK delegate does not take, rewritten into ops it does.

Every op the partitioner refuses runs on ExecuTorch's portable kernels *and*
cuts the delegated graph in two: Mobile-Former's token path (layer norms, the
``z[:, 0]`` that feeds each DY-ReLU) split a naive export into 114 XNNPACK
subgraphs. These decompositions keep the token path inside the delegate:

* ``layer_norm`` over the last axis of ``x`` [..., d]: XNNPACK has no layer
  norm, but its mean takes the two inner axes of a 4-D tensor, so
  ``x -> [N, 1, 1, d]``, ``mu = mean(x)``, ``var = mean((x - mu)^2)``,
  ``y = (x - mu) * rsqrt(var + eps) * gamma + beta`` (biased variance, as ATen).
* ``select(x, dim, i)`` -> ``slice(x, dim, i, i + 1)`` then a view without that axis.
* ``mean(x, (2, 3))`` of a 4-D map without ``keepdim`` -> with it, then a view
  (XNNPACK's global average pool keeps the axes).
* ``split_with_sizes`` / ``chunk`` along an axis -> one ``slice`` per piece.

Applied with ``ExportedProgram.run_decompositions`` before
``to_edge_transform_and_lower`` (see :mod:`.lowering`), so the partitioner only
ever sees ops it delegates. A decomposition returns ``NotImplemented`` for a
form it does not cover (a layer norm over several axes), which keeps the op.
"""

from __future__ import annotations

import torch

aten = torch.ops.aten


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5, cudnn_enable=True):
    if len(normalized_shape) != 1 or x.dim() < 2:
        return NotImplemented
    d = normalized_shape[0]
    rows = aten.view.default(x, [-1, 1, 1, d])
    mean = aten.mean.dim(rows, [2, 3], True)
    centered = aten.sub.Tensor(rows, mean)
    variance = aten.mean.dim(aten.mul.Tensor(centered, centered), [2, 3], True)
    normed = aten.mul.Tensor(centered, aten.rsqrt.default(aten.add.Tensor(variance, eps)))
    out = aten.view.default(normed, list(x.shape))
    if weight is not None:
        out = aten.mul.Tensor(out, weight)
    if bias is not None:
        out = aten.add.Tensor(out, bias)
    return out


def mean_dim(x, dim, keepdim=False, dtype=None):
    """A global average pool without ``keepdim`` (a classifier's ``mean((2, 3))``): pool, then drop the axes."""
    if keepdim or dtype is not None or x.dim() != 4 or sorted(d % 4 for d in dim) != [2, 3]:
        return NotImplemented
    return aten.view.default(aten.mean.dim(x, [2, 3], True), list(x.shape[:2]))


def select(x, dim, index):
    dim = dim % x.dim()
    size = x.shape[dim]
    index = index % size if isinstance(index, int) else index
    piece = aten.slice.Tensor(x, dim, index, index + 1)
    shape = list(x.shape)
    del shape[dim]
    return aten.view.default(piece, shape)


def split_with_sizes(x, split_sizes, dim=0):
    pieces, start = [], 0
    for size in split_sizes:
        pieces.append(aten.slice.Tensor(x, dim, start, start + size))
        start = start + size
    return pieces


def split(x, split_size, dim=0):
    total = x.shape[dim]
    sizes = [min(split_size, total - start) for start in range(0, total, split_size)]
    return split_with_sizes(x, sizes, dim)


def chunk(x, chunks, dim=0):
    total = x.shape[dim]
    step = -(-total // chunks)
    return split(x, step, dim)


DECOMPOSITIONS = {
    aten.layer_norm.default: layer_norm,
    aten.mean.dim: mean_dim,
    aten.select.int: select,
    aten.split_with_sizes.default: split_with_sizes,
    aten.split.Tensor: split,
    aten.chunk.default: chunk,
}
