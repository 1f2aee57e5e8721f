"""Shared pieces of the pass tests: zoo programs traced once per session, op counts, output checks.

Zoo programs are exported once (dynamic H/W where the default run can
afford it) and every test rewrites its own deep copy of ``program.module()``.
Batch norms get non-trivial running statistics and affine parameters: with
the fresh init (mean 0, var 1, gamma 1, beta 0) a wrong fold could still
give the right answer.
"""

from __future__ import annotations

import copy
import functools
import warnings

import pytest
import torch
import torch.fx
from torch.export import Dim

from mobexport.export.trace import TracedProgram, example_input, trace
from mobexport.models import create_model, get_spec

from .harness import (RELATIVE_TOLERANCE, Fires, Refuses, assert_same_outputs, check_pass, op_counts,  # noqa: F401
                      outputs, signature)

aten = torch.ops.aten


def randomize_batchnorm(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=generator) * 0.3)
                m.running_var.copy_(torch.rand(n, generator=generator) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                m.bias.copy_(torch.randn(n, generator=generator) * 0.3)
    return model


def randomize_dynamic_relu(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Hyper-function weights large enough that the slopes cover their ranges and cross (a1 < a2 somewhere)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".hyper." in name or name.startswith("hyper."):
                p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
    return model


@functools.lru_cache(maxsize=None)
def zoo_program(name: str, resolution: int, dynamic: bool) -> TracedProgram:
    """A zoo model in eval mode with randomized BN and DY-ReLU weights, traced once per session."""
    torch.manual_seed(0)
    model = randomize_dynamic_relu(randomize_batchnorm(create_model(name, resolution=resolution))).eval()
    traced = trace(model, get_spec(name), resolution, dynamic=dynamic)
    assert traced.dynamic == dynamic, traced.fallback_reason
    return traced


def zoo_module(name: str, resolution: int, dynamic: bool) -> torch.fx.GraphModule:
    return copy.deepcopy(zoo_program(name, resolution, dynamic).program.module())


def export_dynamic(model: torch.nn.Module, example: torch.Tensor, multiple: int = 8, low: int = 8,
                   high: int = 64) -> torch.fx.GraphModule:
    """``model`` exported with H and W multiples of ``multiple`` in ``[low, high]``."""
    h = Dim("h", min=low // multiple, max=high // multiple)
    w = Dim("w", min=low // multiple, max=high // multiple)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(model.eval(), (example,), strict=False,
                                      dynamic_shapes={"x": {2: multiple * h, 3: multiple * w}})
    return program.module()


def export_static(model: torch.nn.Module, example: torch.Tensor) -> torch.fx.GraphModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.export.export(model.eval(), (example,), strict=False).module()






def images(resolutions, channels: int = 3, batch: int = 1) -> list[torch.Tensor]:
    if channels == 3 and batch == 1:
        return [example_input(r, seed=r) for r in resolutions]
    return [torch.randn(batch, channels, r, r, generator=torch.Generator().manual_seed(r)) for r in resolutions]




def unused_attributes(gm: torch.fx.GraphModule) -> list[str]:
    """Parameters and buffers no node reads: stale copies a pass left to bloat the artifact."""
    read = {str(n.target) for n in gm.graph.nodes if n.op == "get_attr"}
    return [k for k, _ in [*gm.named_parameters(), *gm.named_buffers()] if k not in read]




def reexport_dynamic(gm: torch.fx.GraphModule, example: torch.Tensor, multiple: int, low: int, high: int):
    """Re-export a rewritten module with dynamic H/W; the program must keep both sizes symbolic."""
    h = Dim("h", min=low // multiple, max=high // multiple)
    w = Dim("w", min=low // multiple, max=high // multiple)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(gm, (example,), strict=False,
                                      dynamic_shapes={"x": {2: multiple * h, 3: multiple * w}})
    (x_node,) = [n for n in program.graph.nodes if n.op == "placeholder" and n.name in program.graph_signature.user_inputs]
    assert all(isinstance(s, torch.SymInt) for s in x_node.meta["val"].shape[2:]), "H/W were specialized"
    return program


@pytest.fixture
def fresh_registry():
    """Registers test-only passes and removes them afterwards."""
    from mobexport.export.passes import registry

    registry.available_passes()
    added: list[str] = []

    def register(cls):
        registry.register_pass(cls)
        added.append(cls.id)
        return cls

    yield register
    for pass_id in added:
        registry._PASSES.pop(pass_id, None)
