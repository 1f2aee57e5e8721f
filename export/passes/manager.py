"""Running passes over a traced program, with an optional verify mode.

``rewrite(traced, passes, verify_resolutions=...)`` unlifts the program, runs
each pass in order, and lifts the result back into a program with the
original's dynamic shapes (``lift.py``; a re-export where it cannot), so the
rewritten program accepts exactly what the original did. In
verify mode the graph's outputs are compared before and after every pass at
several resolutions: a pass that moves them by more than ``1e-5`` of the
output scale is named in the error, which is what makes a broken rewrite
findable in a 20-pass pipeline.
"""

from __future__ import annotations

import copy
import logging
import time
import warnings

import torch
import torch.fx

from mobexport.errors import ExportError

from ..trace import TracedProgram, example_input, spatial_dynamic_shapes_for
from .base import GraphPass, PassResult
from .lift import lift

log = logging.getLogger(__name__)

# Error / output scale a pass may leave: float32 reassociation, not arithmetic. Folding 29 BatchNorms of
# VT-ResNet-34 (trained-like statistics) moves its logits by 4.4e-5 of their scale; a wrong rewrite moves them
# by 1e-2 or more (a 1% weight error in one conv: tests/export/passes/test_registry_and_manager.py).
VERIFY_RELATIVE_TOLERANCE = 1e-4


class PassVerificationError(ExportError):
    """A pass changed the graph's outputs."""


def _outputs(gm: torch.fx.GraphModule, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    with torch.no_grad():
        return [gm(x) for x in inputs]


def verify_equal(pass_id: str, before: list[torch.Tensor], after: list[torch.Tensor], resolutions: list[int]) -> float:
    """Largest error relative to output scale; raise naming ``pass_id`` past the tolerance."""
    worst = 0.0
    for res, a, b in zip(resolutions, before, after):
        scale = max(float(a.abs().max()), 1e-6)
        error = float((a - b).abs().max()) / scale
        worst = max(worst, error)
        if not error <= VERIFY_RELATIVE_TOLERANCE:
            raise PassVerificationError(
                f"pass '{pass_id}' changed the outputs at {res}x{res} by {error:.2e} of their scale",
                f"export with --passes none, or without {pass_id}, and report this bug",
            )
    return worst


def run_passes(
    gm: torch.fx.GraphModule, passes: list[GraphPass], verify_resolutions: list[int] | None = None
) -> list[PassResult]:
    """Run ``passes`` over ``gm`` in place; verify each against the graph before it if asked."""
    results = []
    inputs = [example_input(r, seed=getattr(r, "height", r)) for r in verify_resolutions or []]
    reference = _outputs(gm, inputs) if inputs else []
    for graph_pass in passes:
        started = time.perf_counter()
        result = graph_pass.run(gm)
        result.details.setdefault("seconds", round(time.perf_counter() - started, 3))
        if inputs and result.changed:
            after = _outputs(gm, inputs)
            result.details["verified_max_relative_error"] = verify_equal(
                graph_pass.id, reference, after, verify_resolutions
            )
            reference = after
        log.info("pass %s: %d rewrites, %d skipped", graph_pass.id, result.rewrites, len(result.skipped))
        results.append(result)
    return results


def reexport(gm: torch.fx.GraphModule, traced: TracedProgram) -> torch.export.ExportedProgram:
    """``torch.export`` the rewritten module again, with the traced program's input constraints."""
    x = example_input(traced.size)
    dynamic_shapes = spatial_dynamic_shapes_for(traced) if traced.dynamic else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.export.export(gm, (x,), dynamic_shapes=dynamic_shapes, strict=False)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:300]
        raise ExportError(f"re-exporting the rewritten graph failed: {first}", "try --passes none") from exc


def rewrite(
    traced: TracedProgram, passes: list[GraphPass], verify_resolutions: list[int] | None = None
) -> tuple[TracedProgram, list[PassResult]]:
    """Apply ``passes`` to a traced program; the result has the same input constraints.

    The rewritten graph is lifted back into a program (``lift.py``), or re-exported where it cannot be.
    """
    if not passes:
        return traced, []
    with warnings.catch_warnings():  # pytree's LeafSpec deprecation, raised while copying the spec
        warnings.simplefilter("ignore", FutureWarning)
        gm = copy.deepcopy(traced.program.module())
    if verify_resolutions:
        verify_resolutions = [r for r in verify_resolutions if traced.accepts(r)] or [traced.resolution]
    results = run_passes(gm, passes, verify_resolutions)
    if not any(r.changed for r in results):
        return traced, results
    program = lift(gm, traced.program) or reexport(gm, traced)
    return TracedProgram(
        program, traced.resolution, traced.dynamic, traced.min_resolution, traced.max_resolution,
        traced.stride, traced.fallback_reason, width=traced.width,
    ), results
