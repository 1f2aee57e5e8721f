"""Lifting the rewritten graph back into a program (export/passes/lift.py) instead of re-exporting it."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torch.nn as nn
from torch.export.graph_signature import InputKind

from mobexport.export.passes import manager, resolve, rewrite
from mobexport.export.passes.lift import lift
from mobexport.export.trace import TracedProgram

from .conftest import randomize_batchnorm


class Block(nn.Module):
    """Conv + BN (folded into new parameters), a buffer, a constant tensor attribute and a Linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.register_buffer("shift", torch.linspace(-1, 1, 8).view(1, 8, 1, 1))
        self.scale = torch.tensor(0.5)   # a plain tensor attribute: a lifted constant
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(x)) + self.shift) * self.scale
        return self.head(y.mean((2, 3)))


def traced(model: nn.Module, dynamic: bool) -> TracedProgram:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shapes = {"x": {2: 16 * torch.export.Dim("h", min=1, max=8), 3: 16 * torch.export.Dim("w", min=1, max=8)}}
        program = torch.export.export(model, (torch.randn(1, 3, 32, 32),), strict=False,
                                      dynamic_shapes=shapes if dynamic else None)
    return TracedProgram(program, 32, dynamic, 16 if dynamic else 32, 128 if dynamic else 32, 16)


@pytest.fixture
def no_reexport(monkeypatch):
    def refuse(gm, traced):
        raise AssertionError("the rewritten graph was re-exported, not lifted")

    monkeypatch.setattr(manager, "reexport", refuse)


@pytest.mark.parametrize("dynamic", [False, True])
def test_a_rewritten_program_is_lifted_with_its_weights_named_and_its_constraints_kept(no_reexport, dynamic):
    model = randomize_batchnorm(Block()).eval()
    original = traced(model, dynamic)
    rewritten, results = rewrite(original, resolve("fold_batchnorm"))
    assert [r.rewrites for r in results] == [1]
    program = rewritten.program
    kinds = {spec.arg.name: spec.kind for spec in program.graph_signature.input_specs}
    assert kinds["b_shift"] is InputKind.BUFFER and kinds["c_scale"] is InputKind.CONSTANT_TENSOR
    assert kinds["p_head_weight"] is InputKind.PARAMETER and kinds["x"] is InputKind.USER_INPUT
    assert not any(name.startswith("p_bn_") for name in kinds)          # folded away: not an input any more
    assert [k for k in kinds.values()] == sorted(kinds.values(), key=lambda k: [InputKind.PARAMETER, InputKind.BUFFER,
                                                 InputKind.CONSTANT_TENSOR, InputKind.USER_INPUT].index(k))
    assert program.range_constraints == original.program.range_constraints
    sizes = [(32, 32), (64, 48), (128, 16)] if dynamic else [(32, 32)]
    with torch.no_grad():
        for h, w in sizes:
            x = torch.randn(1, 3, h, w)
            torch.testing.assert_close(program.module()(x), model(x), rtol=1e-4, atol=1e-5)


def test_the_lifted_program_exports_to_the_same_onnx_as_a_reexport():
    pytest.importorskip("onnxscript")
    model = randomize_batchnorm(Block()).eval()
    original = traced(model, dynamic=False)
    gm = copy.deepcopy(original.program.module())
    manager.run_passes(gm, resolve("fold_batchnorm"))

    def onnx_bytes(program) -> bytes:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            proto = torch.onnx.export(program, f=None, dynamo=True, optimize=True, verbose=False).model_proto
        # Metadata differs, and the lifted program's is the truer: its nodes keep the model's module names (a
        # re-export names its own wrapper), and 'scale' stays a constant (unlifting made it a buffer).
        for entry in [proto.graph, *proto.graph.node, *proto.graph.value_info]:
            del entry.metadata_props[:]
        return proto.SerializeToString()

    assert onnx_bytes(lift(gm, original.program)) == onnx_bytes(manager.reexport(gm, original))


class Branches(nn.Module):
    """A ``torch.cond``: its branches are submodules of the graph, which only a re-export carries over."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x):
        y = self.bn(self.conv(x))
        return torch.cond(y.sum() > 0, lambda t: t * 2, lambda t: t - 1, (y,))


def test_what_it_cannot_lift_is_reexported_and_the_graph_is_left_as_it_was():
    model = randomize_batchnorm(Branches()).eval()
    original = traced(model, dynamic=False)
    gm = copy.deepcopy(original.program.module())
    manager.run_passes(gm, resolve("fold_batchnorm"))
    before = [(n.op, n.target) for n in gm.graph.nodes]
    assert lift(gm, original.program) is None
    assert [(n.op, n.target) for n in gm.graph.nodes] == before
    rewritten, results = rewrite(original, resolve("fold_batchnorm"))   # re-exported instead
    assert [r.rewrites for r in results] == [1]
    with torch.no_grad():
        for x in (torch.randn(1, 3, 32, 32), -torch.ones(1, 3, 32, 32) * 100):
            torch.testing.assert_close(rewritten.program.module()(x), model(x), rtol=1e-4, atol=1e-5)
