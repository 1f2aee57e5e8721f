"""Shared provenance while lowering: the same program bytes, and torch's NodeSource left as it was."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("executorch")

from torch.fx import traceback as fx_traceback  # noqa: E402

from mobexport.export.targets.executorch.provenance import shared_provenance  # noqa: E402


class Small(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(x)))
        return self.fc(torch.nn.functional.layer_norm(y.mean((2, 3)), (8,)))


def program_bytes(shared: bool) -> bytes:
    from contextlib import nullcontext

    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    torch.manual_seed(0)
    program = torch.export.export(Small().eval(), (torch.randn(1, 3, 16, 16),), strict=False)
    with shared_provenance() if shared else nullcontext():
        return to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch().buffer


def test_the_program_is_byte_for_byte_the_same():
    assert program_bytes(shared=True) == program_bytes(shared=False)


def test_node_source_is_restored_even_after_an_error():
    original = fx_traceback.NodeSource.__init__
    with pytest.raises(RuntimeError):
        with shared_provenance():
            assert fx_traceback.NodeSource.__init__ is not original
            raise RuntimeError("lowering failed")
    assert fx_traceback.NodeSource.__init__ is original


def test_a_new_source_shares_its_ancestors_links():
    graph = torch.fx.Graph()
    node = graph.placeholder("x")
    ancestor = fx_traceback.NodeSource(None, "earlier")
    node.meta["from_node"] = [ancestor]
    with shared_provenance():
        source = fx_traceback.NodeSource(node, "now")
    assert source.from_node == [ancestor] and source.from_node[0] is ancestor
    assert node.meta["from_node"] == [ancestor]  # the node's own list is left as it was
    assert fx_traceback.NodeSource(node, "now").from_node[0] is not ancestor  # outside: a deep copy again
