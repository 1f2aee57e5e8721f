"""The ONNX optimizer in linear time (export/targets/onnx/optimizer.py): the same rewrites, byte-identical models."""

from __future__ import annotations

import contextlib
import warnings

import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxscript")
torch = pytest.importorskip("torch")

from mobexport.export.targets.onnx import optimizer  # noqa: E402


class TwoHalves(torch.nn.Module):
    """Two slices of one input along the last axis, as a user writes them."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(8, 8)

    def forward(self, x):
        y = self.proj(x)
        return torch.relu(y[..., 0:4]) * y[..., 4:8]


def exported(fast: bool) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(TwoHalves().eval(), (torch.randn(2, 8),), strict=False)
        context = optimizer.rules_tried_where_they_can_match() if fast else contextlib.nullcontext()
        with context:
            onnx_program = torch.onnx.export(program, f=None, dynamo=True, optimize=True, verbose=False)
    return onnx_program.model_proto.SerializeToString()


def test_the_exporter_writes_a_byte_identical_model():
    torch.manual_seed(0)
    fast = exported(fast=True)
    torch.manual_seed(0)
    assert fast == exported(fast=False)


def two_slices() -> "onnx.ModelProto":
    """Two 4-input Slices of one input, the halves of its last axis: what ``SlicesSplit`` rewrites to a Split.

    (torch's exporter writes 5-input Slices, with steps, which the rule's pattern does not match.)
    """
    from onnx import TensorProto, helper

    def ints(name, value):
        return helper.make_node("Constant", [], [name], value=helper.make_tensor(name, TensorProto.INT64, [1], [value]))

    nodes = [ints("zero", 0), ints("half", 4), ints("end", 8), ints("last", -1),
             helper.make_node("Slice", ["x", "half", "end", "last"], ["b"]),    # first: onnxscript pairs
             helper.make_node("Slice", ["x", "zero", "half", "last"], ["a"]),    # a node with earlier ones
             helper.make_node("Mul", ["a", "b"], ["y"])]
    graph = helper.make_graph(nodes, "two_slices", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def optimized(fast: bool) -> bytes:
    import onnx_ir as ir
    from onnxscript.optimizer import optimize_ir

    model = ir.from_proto(two_slices())
    with optimizer.rules_tried_where_they_can_match() if fast else contextlib.nullcontext():
        optimize_ir(model)
    return ir.to_proto(model).SerializeToString()


def test_a_restricted_rule_still_fires_where_it_matches():
    fast = optimized(fast=True)
    assert fast == optimized(fast=False)
    ops = [node.op_type for node in onnx.load_from_string(fast).graph.node]
    assert "Split" in ops and "Slice" not in ops, ops


def test_the_multi_output_rules_are_the_ones_restricted_and_restored_after():
    from onnxscript import rewriter

    before = rewriter._DEFAULT_REWRITE_RULES
    with optimizer.rules_tried_where_they_can_match():
        during = rewriter._DEFAULT_REWRITE_RULES
    assert rewriter._DEFAULT_REWRITE_RULES is before
    changed = [old for old, new in zip(before, during) if old is not new]
    assert len(during) == len(before) and changed, "no multi-output rule to restrict: the speed-up is gone"
    assert all(not old._target_pattern.has_single_output_node for old in changed)


class Node:
    """Just enough of an ONNX IR node for the rule's first question."""

    def __init__(self, op_type: str):
        self.op_type = op_type

    def op_identifier(self):
        return ("", self.op_type, "")


def test_a_restricted_rule_says_no_match_at_other_ops_and_the_rules_come_back_after_an_error():
    from onnxscript import rewriter

    before = rewriter._DEFAULT_REWRITE_RULES
    with pytest.raises(RuntimeError, match="boom"):
        with optimizer.rules_tried_where_they_can_match():
            restricted = [new for old, new in zip(before, rewriter._DEFAULT_REWRITE_RULES) if old is not new]
            # The original's matcher would index the graph (None here) first and fail; the restricted rule
            # answers from the node's op alone.
            assert [rule.try_rewrite(None, None, Node("Relu")) for rule in restricted] == [None] * len(restricted)
            raise RuntimeError("boom")
    assert rewriter._DEFAULT_REWRITE_RULES is before
