"""onnxscript's graph optimizer, as ``torch.onnx.export(optimize=True)`` runs it, without its quadratic step.

The exporter's optimizer (onnxscript's ``optimize_ir``: constant folding, its
default rewrite rules, clean-up; then its ONNX fusions) tries every rule at
every node. For a rule whose pattern has two output nodes (``SlicesSplit``:
two ``Slice`` of one input become one ``Split``), onnxscript's matcher first
indexes the whole graph by op type, at every node it is tried at, before it
looks at that node. That is ``N`` index builds of ``N`` nodes per pass: on
Mobile-Former-294M (3,009 nodes before optimizing) it was 3.3 of the
optimizer's 5.2 s (docs/measured/export_time.md).

A pattern matches at a node only if the node has the op of the pattern's
first output, which is the first thing the matcher compares. So
:func:`rules_tried_where_they_can_match` hands the optimizer the same rules,
in the same order, each multi-output one tried only at nodes of that op. The
rewrites are the same and the saved models are byte-identical
(``tests/export/targets/test_onnx_optimizer.py``).

onnxscript reads its default rule list from its ``rewriter`` module when the
optimizer runs, so the rules are swapped there for the duration of the export.
The swapped rules behave the same, so another thread optimizing meanwhile gets
the same result. An onnxscript without these internals runs unchanged.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Iterator


def _tried_where_it_can_match(rule):
    """``rule``, or a copy of it that skips nodes whose op cannot start its multi-output pattern."""
    pattern = getattr(rule, "_target_pattern", None)
    if pattern is None or getattr(pattern, "has_single_output_node", True):
        return rule   # one output node: the matcher already rejects a wrong op at the first comparison
    first_op = pattern.output_nodes[0].op_identifier()
    if first_op is None:
        return rule   # the pattern starts at any op
    try_rewrite = rule.try_rewrite

    def tried_where_it_can_match(model, graph_or_function, node, **kwargs):
        if node.op_identifier() != first_op:
            return None   # what the matcher would conclude, after indexing the whole graph
        return try_rewrite(model, graph_or_function, node, **kwargs)

    faster = copy.copy(rule)
    faster.try_rewrite = tried_where_it_can_match
    return faster


@contextlib.contextmanager
def rules_tried_where_they_can_match() -> Iterator[None]:
    """Within the block, onnxscript's optimizer tries its multi-output rules only where they can match."""
    try:
        from onnxscript import rewriter

        rules = rewriter._DEFAULT_REWRITE_RULES
        faster = tuple(_tried_where_it_can_match(rule) for rule in rules)
    except (ImportError, AttributeError, TypeError):
        yield   # another onnxscript: its optimizer runs as it is
        return
    rewriter._DEFAULT_REWRITE_RULES = faster
    try:
        yield
    finally:
        rewriter._DEFAULT_REWRITE_RULES = rules
