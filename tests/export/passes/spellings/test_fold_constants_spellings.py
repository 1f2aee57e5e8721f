"""fold_constants on constant subgraphs a user writes: projected learned queries, a scaled parameter."""

from __future__ import annotations

import torch
import torch.nn as nn

from mobexport.export.passes.fold_constants import FoldConstantsPass

from ..conftest import Fires, aten, check_pass, export_dynamic, images


class LearnedQueries(nn.Module):
    """``softmax(W q0 / tau)`` of a learned query: the same for every image."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.query = nn.Parameter(torch.randn(1, 8))
        self.to_weights = nn.Linear(8, 8)

    def forward(self, x):
        gate = torch.softmax(self.to_weights(self.query) / 0.5, dim=-1)  # [1, 8], constant
        return (self.conv(x).mean((2, 3)) * gate).sum(-1, keepdim=True) + gate.sum()


def test_projected_learned_query():
    torch.manual_seed(0)
    gm = export_dynamic(LearnedQueries().eval(), torch.randn(1, 3, 32, 32), multiple=8, low=16, high=64)
    (result,) = check_pass(FoldConstantsPass, Fires(gm, images((16, 32, 48)), rewrites=3, ops={aten.linear.default: 0}))
    assert not any(n.op == "get_attr" and n.target == "query" for n in gm.graph.nodes)
