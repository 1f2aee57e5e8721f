"""Tracing a model into a ``torch.export`` program.

One program should serve every resolution a model accepts, so height and width
are exported as symbolic sizes constrained to the spec's range and stride:
``H = stride * h`` with ``h`` in ``[min/stride, max/stride]``. A model whose
code pins a size (a Python ``int`` of a shape, data-dependent control flow)
cannot be dynamic; then we fall back to a static program at the requested
resolution and say so, rather than fail.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.export import Dim, ExportedProgram

from mobexport.errors import ExportError
from mobexport.models.spec import ModelSpec

log = logging.getLogger(__name__)


@dataclass
class TracedProgram:
    """An exported program plus what it accepts."""

    program: ExportedProgram
    resolution: int
    dynamic: bool
    min_resolution: int
    max_resolution: int
    stride: int
    fallback_reason: str | None = None

    def accepts(self, size: int) -> bool:
        if not self.dynamic:
            return size == self.resolution
        return self.min_resolution <= size <= self.max_resolution and size % self.stride == 0

    def describe(self) -> str:
        if self.dynamic:
            return f"{self.min_resolution}..{self.max_resolution} step {self.stride}"
        return f"{self.resolution} (static)"


def example_input(resolution: int, batch: int = 1, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, resolution, resolution, generator=generator)


def spatial_dynamic_shapes(spec: ModelSpec) -> dict:
    r = spec.resolutions
    return _spatial(r.min, r.max, r.stride)


def spatial_dynamic_shapes_for(traced: "TracedProgram") -> dict:
    """The dynamic shapes ``traced`` was exported with, to re-export a rewritten graph."""
    return _spatial(traced.min_resolution, traced.max_resolution, traced.stride)


def _spatial(low: int, high: int, stride: int) -> dict:
    h = Dim("h_blocks", min=max(1, low // stride), max=high // stride)
    w = Dim("w_blocks", min=max(1, low // stride), max=high // stride)
    return {"x": {2: stride * h, 3: stride * w}}


def trace(model: nn.Module, spec: ModelSpec, resolution: int, dynamic: bool = False) -> TracedProgram:
    """Export ``model`` at ``resolution``; dynamic H/W over the spec's range if asked."""
    spec.check_resolution(resolution)
    model = model.eval()
    x = example_input(resolution)
    r = spec.resolutions
    if dynamic:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                program = torch.export.export(model, (x,), dynamic_shapes=spatial_dynamic_shapes(spec), strict=False)
            return TracedProgram(program, resolution, True, r.min, r.max, r.stride)
        except Exception as exc:  # a guard pinned H/W: degrade to static, loudly
            reason = str(exc).strip().splitlines()[0][:200]
            log.warning("%s cannot be exported with dynamic height/width (%s); exporting static %d",
                        spec.name, reason, resolution)
            fallback = reason
    else:
        fallback = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.export(model, (x,), strict=False)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:300]
        raise ExportError(f"torch.export could not trace {spec.name}: {first}", "run with --debug for the full trace") from exc
    return TracedProgram(program, resolution, False, resolution, resolution, r.stride, fallback)
