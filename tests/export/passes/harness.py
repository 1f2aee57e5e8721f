"""The five checks every pass test makes, in one call.

``check_pass(make_pass, Fires(...), Refuses(...), ...)`` runs a fresh pass

1. where it should fire: the expected rewrite count (and op counts, details, skips);
2. on each near miss: no rewrite, a skip whose reason names the problem, the graph untouched;
3. outputs equal to the unrewritten graph's at every input (three resolutions
   unless the graph was exported for one size: ``one_size=True``);
4. a second run over its own output: nothing left to rewrite, the graph unchanged;
5. the input names and the pytree specs of inputs and outputs unchanged.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
import torch.fx
from torch.utils._pytree import tree_leaves

from mobexport.export.passes.base import GraphPass, PassResult
from mobexport.export.passes.manager import VERIFY_RELATIVE_TOLERANCE as RELATIVE_TOLERANCE  # error / output scale


def op_counts(gm: torch.fx.GraphModule) -> collections.Counter:
    return collections.Counter(n.target for n in gm.graph.nodes if n.op == "call_function")


def outputs(gm: torch.fx.GraphModule, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    with torch.no_grad():
        return [gm(x) for x in inputs]


def assert_same_outputs(before: list, after: list) -> None:
    """Each output (tensors, or tuples of them) within the verify tolerance of its reference's scale."""
    before, after = tree_leaves(before), tree_leaves(after)
    assert len(before) == len(after)
    for a, b in zip(before, after):
        assert a.shape == b.shape
        scale = float(a.abs().max())
        error = float((a - b).abs().max()) / scale
        assert scale > 1e-3, "degenerate output: the comparison would prove nothing"
        assert error < RELATIVE_TOLERANCE, f"max abs error {error:.2e} of the output scale"


def signature(gm: torch.fx.GraphModule) -> tuple:
    """What callers see: input names, the pytree specs of inputs and outputs."""
    return ([n.name for n in gm.graph.nodes if n.op == "placeholder"], gm._in_spec, gm._out_spec)


@dataclass
class Fires:
    """A graph the pass must rewrite ``rewrites`` times; ``ops`` maps an op to its count afterwards."""

    gm: torch.fx.GraphModule
    inputs: list[torch.Tensor]
    rewrites: int
    ops: Mapping = field(default_factory=dict)
    details: Mapping = field(default_factory=dict)
    skipped: int | None = 0  # None: any number of skips
    one_size: bool = False  # exported for one input size: a single resolution is all it takes


@dataclass
class Refuses:
    """A near miss: the pass must leave ``gm`` alone and give a reason containing ``reason``."""

    gm: torch.fx.GraphModule
    inputs: list[torch.Tensor]
    reason: str


def _resolutions(inputs: list[torch.Tensor]) -> int:
    return len({tuple(x.shape[-2:]) for x in inputs})


def check_fires(make_pass: Callable[[], GraphPass], case: Fires) -> PassResult:
    gm = case.gm
    assert case.one_size or _resolutions(case.inputs) >= 3, "check outputs at three resolutions"
    before, sig = outputs(gm, case.inputs), signature(gm)

    result = make_pass().run(gm)

    assert result.rewrites == case.rewrites, (result.rewrites, [s.reason for s in result.skipped][:5])
    if case.skipped is not None:
        assert len(result.skipped) == case.skipped, result.skipped
    counts = op_counts(gm)
    for op, count in case.ops.items():
        assert counts[op] == count, f"{op}: {counts[op]} after the pass, expected {count}"
    for key, value in case.details.items():
        assert result.details.get(key) == value, f"details[{key!r}] = {result.details.get(key)!r}, expected {value!r}"
    assert_same_outputs(before, outputs(gm, case.inputs))
    assert signature(gm) == sig, "the pass changed the graph's inputs or output structure"
    code = gm.code
    again = make_pass().run(gm)
    assert again.rewrites == 0 and gm.code == code, f"not idempotent: {again.rewrites} more rewrites"
    return result


def check_refuses(make_pass: Callable[[], GraphPass], case: Refuses) -> PassResult:
    gm = case.gm
    before, code = outputs(gm, case.inputs), gm.code
    result = make_pass().run(gm)
    assert result.rewrites == 0, f"rewrote a near miss {result.rewrites} times"
    assert any(case.reason in s.reason for s in result.skipped), [s.reason for s in result.skipped]
    assert gm.code == code
    assert_same_outputs(before, outputs(gm, case.inputs))
    return result


def check_pass(make_pass: Callable[[], GraphPass], *cases: Fires | Refuses) -> list[PassResult]:
    """Every check above over each case, in order; returns the pass results."""
    assert cases, "give the pass something to fire on or refuse"
    return [check_fires(make_pass, c) if isinstance(c, Fires) else check_refuses(make_pass, c) for c in cases]
