"""ExecuTorch target: a ``.pte`` program, delegated to XNNPACK by default.

``to_edge_transform_and_lower`` turns the exported program into the Edge
dialect and hands every subgraph XNNPACK supports to its partitioner;
``to_executorch`` plans memory and serializes. ``--backend portable`` skips
the partitioner, so every op runs on ExecuTorch's portable kernels (useful as
a reference and on hosts without XNNPACK).

The manifest records delegation coverage (see :mod:`.delegation`) and the
memory plan: the bytes of the activation arenas the runtime must provide.
Intermediates inside an XNNPACK subgraph live in XNNPACK's own workspace,
allocated when the method loads, and are not in that plan.

Programs are static by default: XNNPACK specializes its kernels per shape.
``--dynamic`` is tried (XNNPACK takes upper-bounded dynamic shapes; memory is
planned for the largest size) and falls back to a static program with a note
if lowering fails.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import nullcontext
from functools import partial
from pathlib import Path

from mobexport.config import ExportConfig
from mobexport.devices.runtimes import EXECUTORCH
from mobexport.devices.runtimes.executorch import ACCEPTS_METHODS, delegate_runs_here
from mobexport.errors import ExportError, TargetOptionError, first_line
from mobexport.kernels.lowering import decomposition_table, prepare_fused_ops

from .decomposition import edge_table, kept_ops, xnnpack_partitioner
from .delegation import delegation_coverage, partitioner_reasons
from .provenance import shared_provenance
from ..base import Lowered, Target
from .backends import DELEGATES, partitioner_for
from .options import BACKENDS, ExecuTorchOptions
from .quantizers import QUANTIZERS
from ...trace import TracedProgram, example_input

ETRECORD_NAME = "etrecord.bin"

log = logging.getLogger(__name__)


class ExecuTorchTarget(Target):
    name = "executorch"
    extra = "executorch"
    file_name = "model.pte"
    requires = (("executorch", "executorch"),)
    default_dynamic = False
    options_class = ExecuTorchOptions
    quantizers = QUANTIZERS

    def check_config(self, config: ExportConfig) -> None:
        options = config.target_options
        backend = self.options(config).backend
        if backend not in BACKENDS:
            raise TargetOptionError(f"unknown ExecuTorch backend '{backend}'", f"use --backend {' or '.join(BACKENDS)}")
        if options.get("precision") not in (None, "fp32"):
            raise TargetOptionError(
                f"--precision {options['precision']} is not supported by the executorch target (it exports fp32)",
                "drop --precision; for a smaller, faster program use --quantize int8",
            )

    def prepare(self, traced: TracedProgram, config: ExportConfig) -> TracedProgram:
        """Fused ops as ATen ops: XNNPACK's forms for the delegate, the plainest for portable kernels.

        For XNNPACK the same decomposition also does ExecuTorch's core-ATen one (:mod:`.decomposition`),
        so lowering re-traces the program twice, not four times. Provenance is shared here as in
        :func:`lower_program` (:mod:`.provenance`).
        """
        options = self.options(config)
        table = decomposition_table(options.backend)
        if options.backend == "xnnpack":
            table = {**edge_table(kept_ops(xnnpack_partitioner(), traced.program)), **table}
        with nullcontext() if options.etrecord else shared_provenance():
            return prepare_fused_ops(traced, table)

    def lower(self, traced: TracedProgram, config: ExportConfig, out_dir: Path) -> Lowered:
        backend = self.options(config).backend
        etrecord = self.options(config).etrecord  # for on-device profiles (ETDump rows -> graph nodes)
        notes: list[str] = []
        fallback: TracedProgram | None = None
        try:
            lowered = lower_program(traced.program, backend, accepted_constants(traced), etrecord)
        except Exception as exc:
            if not traced.dynamic:
                raise _export_error(exc, backend) from exc
            reason = first_line(exc, 200)
            log.warning("ExecuTorch (%s) could not lower dynamic height/width (%s); lowering static %d",
                        backend, reason, traced.resolution)
            fallback = static_program(traced, reason)
            notes.append(f"lowered static {traced.resolution}: {backend} could not take dynamic height/width ({reason})")
            try:
                lowered = lower_program(fallback.program, backend, accepted_constants(fallback), etrecord)
            except Exception as exc2:
                raise _export_error(exc2, backend) from exc2

        manager, coverage, signature = lowered
        path = Path(out_dir) / self.file_name
        with open(path, "wb") as f:
            manager.write_to_file(f)
        if etrecord:
            manager.get_etrecord().save(str(Path(out_dir) / ETRECORD_NAME))
        if backend == "xnnpack" and coverage.portable_ops_on_activations:
            slow = coverage.portable_ops_on_activations
            top = ", ".join(f"{name} x{count}" for name, count in list(slow.items())[:5])
            notes.append(f"{sum(slow.values())} op(s) on activations left on slow portable kernels: {top}")
        details = {
            "backend": backend,
            **({"etrecord": ETRECORD_NAME} if etrecord else {}),
            **coverage.to_dict(),
            **memory_plan(manager),
            **signature,
        }
        return Lowered(path=path, kind=EXECUTORCH, details=details, notes=notes, traced=fallback,
                       runnable=partial(delegate_runs_here, backend))


def accepted_constants(traced: TracedProgram) -> dict[str, int]:
    """Constant methods that make a ``.pte`` say which sizes it accepts (read by the runner)."""
    return {ACCEPTS_METHODS[0]: traced.min_resolution, ACCEPTS_METHODS[1]: traced.max_resolution,
            ACCEPTS_METHODS[2]: traced.stride if traced.dynamic else 1}


def lower_program(program, backend: str, constants: dict[str, int] | None = None, etrecord: bool = False):
    """Lower ``program`` for ``backend``: (ExecutorchProgramManager, coverage, I/O signature).

    ``etrecord``: keep an ETRecord in the manager (``manager.get_etrecord()``) so that an ETDump of the
    program can be mapped back to graph nodes.
    """
    from executorch.exir import to_edge_transform_and_lower

    partitioners = []
    if backend == "xnnpack":
        partitioners.append(xnnpack_partitioner())
    elif backend in DELEGATES:
        partitioners.append(partitioner_for(backend))
    with warnings.catch_warnings(), (nullcontext() if etrecord else shared_provenance()):
        warnings.simplefilter("ignore")
        with partitioner_reasons() as reasons:
            edge = to_edge_transform_and_lower(program, partitioner=partitioners, constant_methods=constants,
                                               generate_etrecord=etrecord)
        # Coverage is read from the partitioned edge graph, before memory planning adds alloc nodes.
        edge_program = edge.exported_program()
        coverage = delegation_coverage(edge_program, backend, reasons if partitioners else None)
        signature = {"inputs": _signature(edge_program, "inputs"), "outputs": _signature(edge_program, "outputs")}
        manager = edge.to_executorch()
    return manager, coverage, signature


def static_program(traced: TracedProgram, reason: str) -> TracedProgram:
    """Re-export ``traced`` with its example resolution fixed."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(traced.program.module(), (example_input(traced.size),), strict=False)
    return TracedProgram(program, traced.resolution, False, traced.resolution, traced.resolution,
                         traced.stride, fallback_reason=reason, width=traced.width)


def memory_plan(manager) -> dict:
    """Bytes of the planned (non-constant) memory arenas of ``forward``.

    Buffer 0 is reserved by ExecuTorch's planner and always 0.
    """
    plans = {plan.name: plan for plan in manager.executorch_program.execution_plan}
    plan = plans.get("forward") or next(iter(plans.values()))
    sizes = [int(s) for s in plan.non_const_buffer_sizes]
    return {"planned_memory_bytes": sum(sizes[1:]), "memory_arenas_bytes": sizes[1:]}


def _signature(program, which: str) -> list[dict]:
    """Names and shapes of the user inputs or outputs (symbolic sizes as text)."""
    import torch

    sig = program.graph_signature
    nodes = {n.name: n for n in program.graph.nodes}
    names = sig.user_inputs if which == "inputs" else sig.user_outputs
    out = []
    for name in names:
        node = nodes.get(name)
        val = node.meta.get("val") if node is not None else None
        shape = [int(s) if isinstance(s, int) else str(s) for s in val.shape] if isinstance(val, torch.Tensor) else None
        out.append({"name": name, "shape": shape})
    return out


def _export_error(exc: BaseException, backend: str) -> ExportError:
    hint = "try --backend portable, or run with --debug for the full trace" if backend == "xnnpack" \
        else "run with --debug for the full trace"
    return ExportError(f"ExecuTorch lowering ({backend}) failed: {first_line(exc, 200)}", hint)
