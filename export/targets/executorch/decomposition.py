"""Decompose a program once before ExecuTorch lowers it to XNNPACK, not three times inside.

Why: every ``run_decompositions`` re-traces the whole program under fake
tensors, about 8 s for Mobile-Former-294M's 2,000 nodes. Given a partitioner
whose op-support check (``ops_to_not_decompose`` returns a check function)
must be consulted, ``to_edge_transform_and_lower`` takes its
``EDGE_DO_NOT_DECOMP`` path: one functionalizing re-trace, one with the
partitioner's ops kept, then the full table again after tagging the nodes
the check accepted. With our own fused-op decomposition before it, that is
four re-traces.

What we do instead, with the same result:

* :func:`edge_table` is ExecuTorch's decomposition table without the ops the
  partitioner keeps, to be merged with the fused-op table into the one
  decomposition the target's ``prepare`` runs anyway;
* :func:`xnnpack_partitioner` answers the op-support question up front: when
  the check accepts every node of every kept op, "keep these ops" needs no
  per-node tagging, and ExecuTorch takes its direct path, which skips the
  table re-trace when no op of it is left. Two re-traces instead of four.

When the check refuses some node (an XNNPACK linear it cannot take), the
partitioner says so and ExecuTorch tags node by node as before. Either way
the ``.pte`` is byte-for-byte the one the three-step path writes
(``tests/export/targets/test_executorch_decomposition.py``).
"""

from __future__ import annotations

from functools import cache
from typing import Callable

import torch


def kept_ops(partitioner, program: torch.export.ExportedProgram) -> set:
    """The ops ``partitioner`` keeps whole, when its check accepts every node of them; else none."""
    ops, check = partitioner.ops_to_not_decompose(program)
    return set(ops) if accepts_every_node(program, ops, check) else set()


def accepts_every_node(program: torch.export.ExportedProgram, ops, check: Callable | None) -> bool:
    if check is None:
        return True
    ops = set(ops)
    return all(check(node) for node in program.graph.nodes if node.op == "call_function" and node.target in ops)


def edge_table(keep: set) -> dict:
    """ExecuTorch's decomposition table (core ATen and its own additions) without the ops in ``keep``."""
    try:
        from executorch.exir.tracer import _default_decomposition_table
        table = dict(_default_decomposition_table())
    except ImportError:  # an ExecuTorch that moved it: torch's core ATen table, ExecuTorch decomposes the rest
        table = dict(torch.export.default_decompositions())
    for op in keep:
        table.pop(op, None)
    return table


@cache
def _settled_class():
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    class SettledXnnpackPartitioner(XnnpackPartitioner):
        """XNNPACK's partitioner, with its op-support check applied before ExecuTorch asks."""

        def ops_to_not_decompose(self, ep):
            ops, check = super().ops_to_not_decompose(ep)
            return ops, (None if accepts_every_node(ep, ops, check) else check)

    return SettledXnnpackPartitioner


def xnnpack_partitioner():
    """An ``XnnpackPartitioner`` that lets ExecuTorch skip per-node tagging when nothing needs it."""
    return _settled_class()()
