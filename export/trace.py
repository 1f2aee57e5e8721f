"""Tracing a model into a ``torch.export`` program.

One program should serve every resolution a model accepts, so height and width
are exported as symbolic sizes constrained to the spec's range and stride:
``H = stride * h`` with ``h`` in ``[min/stride, max/stride]``. A model whose
code pins a size (a Python ``int`` of a shape, data-dependent control flow)
cannot be dynamic; then we fall back to a static program at the requested
resolution and say so, rather than fail.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.export import Dim, ExportedProgram

from mobexport.errors import ExportError, first_line
from mobexport.models.references import eval_mode
from mobexport.models.spec import ModelSpec
from mobexport.shapes import Resolution

log = logging.getLogger(__name__)


@dataclass
class TracedProgram:
    """An exported program plus what it accepts."""

    program: ExportedProgram
    resolution: int  # the export height (and width, unless ``width`` says otherwise)
    dynamic: bool
    min_resolution: int
    max_resolution: int
    stride: int
    fallback_reason: str | None = None
    width: int | None = None  # the export width of a rectangular input; None = square

    @property
    def size(self) -> Resolution:
        """The export height and width."""
        return Resolution(self.resolution, self.resolution if self.width is None else self.width)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return self.size.input_shape()

    def accepts(self, size: "int | Resolution") -> bool:
        size = Resolution.of(size)
        if not self.dynamic:
            return size == self.size
        return all(self.min_resolution <= s <= self.max_resolution and s % self.stride == 0
                   for s in (size.height, size.width))

    def describe(self) -> str:
        if self.dynamic:
            return f"{self.min_resolution}..{self.max_resolution} step {self.stride}"
        return f"{self.size} (static)"


def example_input(resolution: "int | Resolution", batch: int = 1, seed: int = 0) -> torch.Tensor:
    """A standard-normal image batch at ``resolution`` (``224`` or ``Resolution(256, 320)``)."""
    size = Resolution.of(resolution)
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, size.height, size.width, generator=generator)


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


@contextlib.contextmanager
def quiet_export_dump():
    """Keep the graph ``torch.export`` prints on a data-dependent failure off stderr (logged at debug level):
    the error names the failing line in one line instead."""
    captured = io.StringIO()
    shapes_log = logging.getLogger("torch.fx.experimental.symbolic_shapes")
    level = shapes_log.level
    shapes_log.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stderr(captured):
            yield
    finally:
        shapes_log.setLevel(level)
        if captured.getvalue().strip():
            log.debug("torch.export said:\n%s", captured.getvalue())


def trace(model: nn.Module, spec: ModelSpec, resolution: "int | Resolution", dynamic: bool = False,
          on_failure=None) -> TracedProgram:
    """Export ``model`` at ``resolution``; dynamic H/W over the spec's range if asked.

    ``on_failure(exc)`` may turn a tracing failure into its own error (a user
    model's names the failing line); by default it is an :class:`ExportError`.
    """
    size = Resolution.of(resolution)
    for side in {size.height, size.width}:
        spec.check_resolution(side)
    resolution = size.height
    width = None if size.square else size.width
    model = eval_mode(model)
    x = example_input(size)
    r = spec.resolutions
    if dynamic:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                program = torch.export.export(model, (x,), dynamic_shapes=spatial_dynamic_shapes(spec), strict=False)
            return TracedProgram(program, resolution, True, r.min, r.max, r.stride, width=width)
        except Exception as exc:  # a guard pinned H/W: degrade to static, loudly
            reason = str(exc).strip().splitlines()[0][:200]
            log.warning("%s cannot be exported with dynamic height/width (%s); exporting static %d",
                        spec.name, reason, resolution)
            fallback = reason
    else:
        fallback = None
    try:
        with warnings.catch_warnings(), quiet_export_dump():
            warnings.simplefilter("ignore")
            program = torch.export.export(model, (x,), strict=False)
    except Exception as exc:
        if on_failure is not None:
            on_failure(exc)
        raise ExportError(f"torch.export could not trace {spec.name}: {first_line(exc)}",
                          "run with --debug for the full trace") from exc
    return TracedProgram(program, resolution, False, resolution, resolution, r.stride, fallback, width=width)
