"""Delegation coverage of a lowered ExecuTorch program.

After partitioning, the top-level graph holds ``executorch_call_delegate``
nodes (one per delegate subgraph, e.g. one XNNPACK blob) and every op the
delegate did not take. Those run on ExecuTorch's portable kernels: reference
C++ loops, often 10-100x slower than the delegate. Falling back to them is
silent, so we count it, by op and by multiply-accumulates:

* ops: ``call_function`` nodes inside each delegate's original graph versus
  at the top level (``getitem`` and the delegate calls themselves excluded);
  a top-level op that no user input flows into (a dtype copy of a scalar
  constant, say) is counted apart, as it costs next to nothing per run;
* MACs: convolution ``numel(out) * C_in/groups * kH * kW``, linear/matmul
  ``numel(out) * K``, attention ``B*H*L*S*(E+E_v)``, from each node's fake
  tensor (``meta["val"]``); symbolic sizes count at their example value.
"""

from __future__ import annotations

import contextlib
import logging
import operator
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator

import torch
import torch.fx

# Ops that compute MACs, by ATen name without overload.
_CONV = {"aten.convolution", "aten.conv2d", "aten.conv1d"}
_LINEAR = {"aten.linear"}
_MATMUL = {"aten.mm", "aten.bmm", "aten.matmul"}
_MATMUL_BIAS = {"aten.addmm", "aten.baddbmm"}
_ATTENTION_PREFIX = ("aten.scaled_dot_product_attention", "aten._scaled_dot_product")
_NOT_OPS = {"executorch_call_delegate"}
# XNNPACK's partitioner configs log (at DEBUG, under this logger) why they refused a node.
XNNPACK_WHY_LOGGER = "executorch.backends.xnnpack.partition.config"
NO_KERNEL = "the delegate has no kernel for this op"


@dataclass
class DelegationCoverage:
    """How much of a program a delegate runs, in ops and in MACs."""

    backend: str
    delegate_subgraphs: int = 0
    ops_delegated: int = 0
    ops_portable: int = 0
    macs_delegated: int = 0
    macs_portable: int = 0
    portable_ops: dict[str, int] = field(default_factory=dict)
    # The portable ops that process activations (a user input flows into them): the slow ones.
    portable_ops_on_activations: dict[str, int] = field(default_factory=dict)
    # Why the delegate refused each of those ops (its partitioner's first reason).
    portable_reasons: dict[str, str] = field(default_factory=dict)
    delegated_ops: dict[str, int] = field(default_factory=dict)

    @property
    def op_coverage(self) -> float:
        total = self.ops_delegated + self.ops_portable
        return self.ops_delegated / total if total else 0.0

    @property
    def mac_coverage(self) -> float:
        total = self.macs_delegated + self.macs_portable
        return self.macs_delegated / total if total else 0.0

    def to_dict(self) -> dict:
        return {
            "backend": self.backend,
            "delegate_subgraphs": self.delegate_subgraphs,
            "ops_delegated": self.ops_delegated,
            "ops_portable": self.ops_portable,
            "op_coverage": round(self.op_coverage, 4),
            "macs_delegated": self.macs_delegated,
            "macs_portable": self.macs_portable,
            "mac_coverage": round(self.mac_coverage, 4),
            "portable_ops": self.portable_ops,
            "portable_ops_on_activations": self.portable_ops_on_activations,
            "portable_reasons": self.portable_reasons,
            "delegated_ops": self.delegated_ops,
        }


def op_name(target) -> str:
    """``aten.convolution.default`` for an ATen/Edge op, the callable's name otherwise."""
    underlying = getattr(target, "_op", target)  # EdgeOpOverload wraps the ATen overload
    if isinstance(underlying, torch._ops.OpOverload):
        return str(underlying)
    return getattr(target, "__name__", str(target))


def _size(value) -> int:
    """An int from a size that may be symbolic (its example value then)."""
    if isinstance(value, int):
        return value
    hint = getattr(getattr(value, "node", None), "hint", None)
    return int(hint) if hint is not None else int(value)


def _numel(tensor) -> int:
    n = 1
    for s in tensor.shape:
        n *= _size(s)
    return n


def _val(arg):
    return arg.meta.get("val") if isinstance(arg, torch.fx.Node) else None


def node_macs(node: torch.fx.Node) -> int:
    """Multiply-accumulates of one op node, 0 for ops that have none."""
    name = op_name(node.target).rsplit(".", 1)[0]
    out = node.meta.get("val")
    if not isinstance(out, torch.Tensor):
        return 0
    if name in _CONV:
        weight = _val(node.args[1])
        return _numel(out) * _size(weight.shape[1]) * _numel(weight[0, 0]) if weight is not None else 0
    if name in _LINEAR:
        weight = _val(node.args[1])
        return _numel(out) * _size(weight.shape[-1]) if weight is not None else 0
    if name in _MATMUL or name in _MATMUL_BIAS:
        a = _val(node.args[1] if name in _MATMUL_BIAS else node.args[0])
        return _numel(out) * _size(a.shape[-1]) if a is not None else 0
    if name.startswith(_ATTENTION_PREFIX):
        q, k, v = (_val(a) for a in node.args[:3])
        if q is None or k is None or v is None:
            return 0
        length, source = _size(q.shape[-2]), _size(k.shape[-2])
        batch_heads = _numel(q) // (length * _size(q.shape[-1]))
        return batch_heads * length * source * (_size(q.shape[-1]) + _size(v.shape[-1]))
    return 0


def _is_op(node: torch.fx.Node) -> bool:
    return (node.op == "call_function" and node.target is not operator.getitem
            and op_name(node.target) not in _NOT_OPS)


def _sorted(counter: Counter) -> dict[str, int]:
    return dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


class _WhyCollector(logging.Handler):
    """Keeps the first reason the partitioner gives for each node it refuses."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.reasons: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        why = record.msg  # a WhyNoPartition, read now: the partitioner reuses it for the next node
        node, reason = getattr(why, "node", None), getattr(why, "reason", None)
        if node is not None and reason:
            self.reasons.setdefault(node.name, str(reason))


@contextlib.contextmanager
def partitioner_reasons(logger_name: str = XNNPACK_WHY_LOGGER) -> Iterator[dict[str, str]]:
    """Collect ``node name -> why it was not delegated`` while partitioning runs inside."""
    logger = logging.getLogger(logger_name)
    collector = _WhyCollector()
    level, propagate = logger.level, logger.propagate
    logger.addHandler(collector)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # the reasons go to the manifest, not to the console
    try:
        yield collector.reasons
    finally:
        logger.removeHandler(collector)
        logger.setLevel(level)
        logger.propagate = propagate


def delegation_coverage(program, backend: str, reasons: dict[str, str] | None = None) -> DelegationCoverage:
    """Coverage of a partitioned edge ``ExportedProgram``; ``reasons`` from :func:`partitioner_reasons`."""
    graph_module = program.graph_module
    coverage = DelegationCoverage(backend=backend)
    portable: Counter = Counter()
    on_activations: Counter = Counter()
    delegated: Counter = Counter()
    activation_nodes = set(program.graph_signature.user_inputs)
    for node in graph_module.graph.nodes:
        if any(arg.name in activation_nodes for arg in node.all_input_nodes):
            activation_nodes.add(node.name)
    for node in graph_module.graph.nodes:
        if node.op == "get_attr" and node.name.startswith("lowered_module"):
            lowered = getattr(graph_module, node.target)
            coverage.delegate_subgraphs += 1
            inner = lowered.original_module.graph_module
            for inner_node in inner.graph.nodes:
                if _is_op(inner_node):
                    delegated[op_name(inner_node.target)] += 1
                    coverage.macs_delegated += node_macs(inner_node)
        elif _is_op(node):
            portable[op_name(node.target)] += 1
            if node.name in activation_nodes:
                on_activations[op_name(node.target)] += 1
                if reasons is not None:
                    coverage.portable_reasons.setdefault(op_name(node.target), reasons.get(node.name, NO_KERNEL))
            coverage.macs_portable += node_macs(node)
    coverage.ops_delegated = sum(delegated.values())
    coverage.ops_portable = sum(portable.values())
    coverage.portable_ops = _sorted(portable)
    coverage.portable_ops_on_activations = _sorted(on_activations)
    coverage.delegated_ops = _sorted(delegated)
    return coverage
