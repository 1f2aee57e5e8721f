"""Each fused op's lowerings, and the step that applies one of them before a target lowers.

A rewritten program may hold ``mobexport::*`` ops. Each target's ``prepare``
hook (``export/targets/<id>/target.py``) picks the form it lowers:

* ONNX (and TensorRT, which builds from that ONNX file): an onnxscript
  translation per op, handed to ``torch.onnx.export(...,
  custom_translation_table=...)`` by :func:`onnx_translation_table`;
* ExecuTorch: a decomposition into ATen ops, applied with
  ``ExportedProgram.run_decompositions`` before ``to_edge_transform_and_lower``;
  for the XNNPACK backend also :mod:`.xnnpack_decompositions` (ops the
  delegate lacks), the ``portable`` backend gets the plainest form;
* Core ML and LiteRT: a decomposition likewise (MIL and TFLite have the plain ops; coremltools'
  ``register_torch_op`` would add nothing measurable here).

:func:`prepare_fused_ops` applies a :func:`decomposition_table`: a program
without those ops is returned as is.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Callable

import torch

from . import token_softmax, xnnpack_decompositions


@dataclass(frozen=True)
class FusedOp:
    """A ``mobexport::`` op and how every target lowers it."""

    op: torch._ops.OpOverload
    onnx: Callable  # onnxscript translation (ONNX, TensorRT)
    xnnpack: Callable  # ATen decomposition for ExecuTorch + XNNPACK
    portable: Callable  # ATen decomposition for ExecuTorch's portable kernels
    plain: Callable  # ATen decomposition into plain ops (Core ML, LiteRT)


FUSED_OPS: tuple[FusedOp, ...] = (
    FusedOp(token_softmax.OP, onnx=token_softmax.onnx_translation, xnnpack=token_softmax.xnnpack_decomposition,
            portable=token_softmax.axis_decomposition, plain=token_softmax.axis_decomposition),
)


def onnx_translation_table() -> dict:
    """``custom_translation_table`` for ``torch.onnx.export(dynamo=True)``."""
    return {fused.op: fused.onnx for fused in FUSED_OPS}


# The ATen forms a fused op can be decomposed into (fields of FusedOp).
FORMS = ("xnnpack", "portable", "plain")


def decomposition_table(form: str) -> dict:
    """The ATen decompositions of one form; XNNPACK's also spells the ops its delegate lacks."""
    if form not in FORMS:
        raise ValueError(f"unknown decomposition form '{form}' (one of {', '.join(FORMS)})")
    table = {fused.op: getattr(fused, form) for fused in FUSED_OPS}
    if form == "xnnpack":
        table.update(xnnpack_decompositions.DECOMPOSITIONS)
    return table


def fused_ops_in(program: torch.export.ExportedProgram) -> set:
    ops = {fused.op for fused in FUSED_OPS}
    return {n.target for n in program.graph.nodes if n.op == "call_function" and n.target in ops}


def decompose(program: torch.export.ExportedProgram, table: dict) -> torch.export.ExportedProgram:
    """Apply only ``table`` (other ops stay as they are) when the program holds any of its ops."""
    present = {n.target for n in program.graph.nodes if n.op == "call_function"}
    if not table or not (present & set(table)):
        return program
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return program.run_decompositions(table)


def prepare_fused_ops(traced, table: dict):
    """``traced`` (a :class:`~mobexport.export.trace.TracedProgram`) with ``table`` applied to its program."""
    program = decompose(traced.program, table)
    return traced if program is traced.program else replace(traced, program=program)
