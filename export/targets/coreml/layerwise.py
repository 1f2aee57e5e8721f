"""Layer-wise comparison: the first MIL op whose output departs from the PyTorch program (after Polygraphy).

coremltools names each MIL op after the ``torch.export`` node it converts
(``conv2d_3``), with a ``_cast_fp16`` / ``_cast_fp32`` suffix in a program it
casts; the ops it adds on its own (layout transposes, decompositions) have
names no node has and are skipped. Both programs run on the same input, every
intermediate kept; the named pairs are compared in MIL program order and the
first whose relative error (``||mil - torch|| / ||torch||``) passes the bound,
or which turns non-finite where PyTorch is finite, is the first wrong op.
Error accumulates along the network, so the bound is a jump, not a rounding:
a correct fp16 program stays well below it op by op.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np
import torch

from mobexport.devices.runtimes.coreml_mil import MILInterpreter

# Relative error past which an op's output has departed (fp16 storage: ~1e-3 per op, ~1e-2 after many).
# A correct fp16 Mobile-Former-26M peaks at 0.07 on a product of near-cancelling terms; real faults are O(1) or inf.
DEPARTURE = {"fp32": 1e-3, "fp16": 0.3}
_SUFFIX = re.compile(r"(_cast_fp(16|32))+$")


@dataclass
class Departure:
    op: str
    op_type: str
    node: str
    relative_error: float
    max_abs_error: float
    last_matching: str | None
    compared: int

    def describe(self) -> str:
        after = f", after '{self.last_matching}' matched" if self.last_matching else ""
        return (f"first departing MIL op: '{self.op}' ({self.op_type}) vs PyTorch node '{self.node}', relative "
                f"error {self.relative_error:.3g}, max|err| {self.max_abs_error:.3g}{after}; "
                f"{self.compared} named ops compared")

    def to_dict(self) -> dict:
        return asdict(self)


def torch_intermediates(program, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every call_function node's output (tensors only) of a ``torch.export`` program, by node name."""
    module = program.module()
    values: dict[str, np.ndarray] = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, node):
            result = super().run_node(node)
            if node.op == "call_function" and isinstance(result, torch.Tensor):
                values[node.name] = result.detach().float().numpy().copy()
            return result

    with torch.no_grad():
        Recorder(module).run(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    return values


def node_names(mil_name: str) -> list[str]:
    """PyTorch node names a MIL output may stand for, most likely first.

    coremltools appends ``_cast_fp16``, numbers a node's first op ``_0`` when it
    emits several (``linear`` -> ``linear_0``), and turns ``div`` by a constant
    into a ``mul`` named ``_inversed_div`` (the same value).
    """
    base = _SUFFIX.sub("", mil_name)
    names = [base]
    if base.endswith("_0"):
        names.append(base[:-2])
    if base.startswith("_inversed_"):
        names.append(base[len("_inversed_"):])
    return names


def first_departure(interpreter: MILInterpreter, program, x: np.ndarray, input_name: str = "input",
                    precision: str = "fp32", bound: float | None = None) -> Departure | None:
    """The first named MIL op output departing from ``program``'s node of that name on input ``x``."""
    bound = DEPARTURE.get(precision, DEPARTURE["fp16"]) if bound is None else bound
    reference = torch_intermediates(program, x)
    _, mil = interpreter.run({input_name: x}, keep=True)
    last = None
    compared = 0
    for op in interpreter.operations:
        for var in op.outputs:
            name = next((n for n in node_names(var.name) if n in reference), None)
            if name is None or var.name not in mil:
                continue
            got, want = np.asarray(mil[var.name]), reference[name]
            if not isinstance(got, np.ndarray) or got.size != want.size or got.dtype.kind != "f":
                continue
            got = got.reshape(want.shape).astype(np.float64)
            want = want.astype(np.float64)
            compared += 1
            finite_ref = np.isfinite(want)
            if not np.isfinite(got[finite_ref]).all():
                return Departure(var.name, op.op_type, name, float("inf"), float("inf"), last, compared)
            diff = np.abs(got - want)[finite_ref]
            scale = float(np.linalg.norm(want[finite_ref]))
            relative = float(np.linalg.norm(diff)) / max(scale, 1e-12) if diff.size else 0.0
            if relative > bound and float(diff.max()) > 1e-6:
                return Departure(var.name, op.op_type, name, relative, float(diff.max()), last, compared)
            last = var.name
    return None
