"""One decomposition before ExecuTorch lowers to XNNPACK: the same .pte bytes, two re-traces instead of four."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("executorch")

from mobexport.config import ExportConfig  # noqa: E402
from mobexport.export.targets.executorch.decomposition import (  # noqa: E402
    accepts_every_node, edge_table, kept_ops, xnnpack_partitioner)
from mobexport.export.targets.executorch.target import ExecuTorchTarget, lower_program  # noqa: E402
from mobexport.export.trace import TracedProgram  # noqa: E402
from mobexport.kernels import token_softmax  # noqa: E402
from mobexport.kernels.lowering import decomposition_table, prepare_fused_ops  # noqa: E402

aten = torch.ops.aten


class Hybrid(torch.nn.Module):
    """A conv stage and a token stage: what the XNNPACK partitioner keeps (linear, hardswish) and what it decomposes."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.tokens = torch.nn.Parameter(torch.randn(1, 4, 8))
        self.q = torch.nn.Linear(8, 8)
        self.norm = torch.nn.LayerNorm(8)

    def forward(self, x):
        y = torch.nn.functional.hardswish(self.conv(x))  # [1, 8, H, W]
        t = self.norm(self.q(self.tokens))  # [1, 4, 8]
        scores = t @ y.flatten(2)  # [1, 4, HW]
        attn = token_softmax.token_softmax(scores)  # over the 4 tokens
        return (attn.transpose(1, 2) @ t).mean(1)


def traced_hybrid() -> TracedProgram:
    torch.manual_seed(0)
    program = torch.export.export(Hybrid().eval(), (torch.randn(1, 3, 16, 16),), strict=False)
    return TracedProgram(program, 16, False, 16, 16, 1)


@pytest.fixture
def count_retraces(monkeypatch):
    """Counts re-traces of the model's program (XNNPACK also decomposes its small pattern graphs, once per process)."""
    calls = []
    original = torch.export.ExportedProgram.run_decompositions

    def counted(self, *args, **kwargs):
        if any(n.target in (aten.conv2d.default, aten.convolution.default) for n in self.graph.nodes):
            calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.export.ExportedProgram, "run_decompositions", counted)
    return calls


def test_same_program_bytes_in_half_the_retraces(count_retraces):
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    # ExecuTorch's own path, as before: the fused-op table, then the EDGE_DO_NOT_DECOMP path.
    before = prepare_fused_ops(traced_hybrid(), decomposition_table("xnnpack"))
    old_bytes = to_edge_transform_and_lower(before.program, partitioner=[XnnpackPartitioner()]).to_executorch().buffer
    old_retraces = len(count_retraces)
    count_retraces.clear()

    config = ExportConfig(model="hybrid", target="executorch", target_options={"backend": "xnnpack"})
    after = ExecuTorchTarget().prepare(traced_hybrid(), config)
    manager, coverage, _ = lower_program(after.program, "xnnpack")

    assert old_retraces == 4
    assert len(count_retraces) == 2
    assert manager.buffer == old_bytes
    assert coverage.mac_coverage == 1.0


def test_kept_ops_are_left_whole_and_the_rest_is_core_aten():
    traced = traced_hybrid()
    keep = kept_ops(xnnpack_partitioner(), traced.program)
    assert {aten.linear.default, aten.hardswish.default} <= keep
    table = edge_table(keep)
    assert not keep & set(table)
    prepared = prepare_fused_ops(traced, {**table, **decomposition_table("xnnpack")})
    targets = {n.target for n in prepared.program.graph.nodes if n.op == "call_function"}
    assert {aten.linear.default, aten.hardswish.default} <= targets
    assert token_softmax.OP not in targets and aten.layer_norm.default not in targets


def test_a_refused_node_leaves_the_per_node_check_to_executorch():
    program = traced_hybrid().program

    class Refusing:
        def ops_to_not_decompose(self, ep):
            return [aten.linear.default], lambda node: False

    assert kept_ops(Refusing(), program) == set()
    assert not accepts_every_node(program, [aten.linear.default], lambda node: False)
    assert accepts_every_node(program, [aten.linear.default], None)
    # An op with no node in the program is accepted: there is nothing to check.
    assert accepts_every_node(program, [aten.upsample_bilinear2d.vec], lambda node: False)
