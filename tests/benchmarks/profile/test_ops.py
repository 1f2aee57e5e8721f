"""The ORT per-op profile: events summed per op type, per run, and the comparison rows."""

from __future__ import annotations

import json

import pytest

from mobexport.benchmarks.profile.ops import (comparison_rows, etdump_per_op_kind, per_op_type, profile_events,
                                              profile_model)


def _event(name, op, dur_us, cat="Node"):
    return {"cat": cat, "name": f"{name}_kernel_time", "dur": dur_us, "args": {"op_name": op}}


def test_events_are_summed_per_op_type_and_divided_by_runs(tmp_path):
    trace = tmp_path / "trace.json"
    events = [_event("conv_1", "Conv", 3000), _event("conv_2", "Conv", 1000), _event("mm", "MatMul", 500),
              {"cat": "Session", "name": "model_run", "dur": 99999}, _event("conv_1", "Conv", 3000, cat="Node")]
    trace.write_text(json.dumps(events))
    found = profile_events(trace)
    assert len(found) == 4  # the session event is not an operator
    ops = per_op_type(found, runs=2)
    assert list(ops) == ["Conv", "MatMul"]
    assert ops["Conv"] == {"ms": pytest.approx(3.5), "nodes": 2} and ops["MatMul"]["ms"] == pytest.approx(0.25)


def test_comparison_rows_keep_the_costly_ops_and_the_rest():
    a = {"total_ms": 10.0, "ops": {"Conv": {"ms": 6.0}, "Mul": {"ms": 3.0}, "Add": {"ms": 1.0}}}
    b = {"total_ms": 5.0, "ops": {"Conv": {"ms": 5.0}}}
    rows = comparison_rows([a, b], top=2)
    assert rows == [("Conv", [6.0, 5.0]), ("Mul", [3.0, 0.0]), ("(other)", [1.0, 0.0])]


def test_a_real_profile_of_a_small_model(tmp_path):
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    result = profile_model("mobilenet_v3_small_075", 96, "default", runs=3, warmup=1, threads=1, work=tmp_path)
    assert result["total_ms"] > 0 and result["macs"] > 0
    assert any(op in result["ops"] for op in ("Conv", "FusedConv"))  # the convs are where its time goes
    assert sum(r["ms"] for r in result["ops"].values()) == pytest.approx(result["total_ms"])


def test_etdump_events_are_summed_per_operator_kind_without_the_wrappers():
    events = [("Method::execute", 9.0), ("DELEGATE_CALL", 8.9), ("Fully Connected (NC, F32) GEMM #1", 0.5),
              ("Fully Connected (NC, F32) GEMM #12", 0.25), ("Convolution (NHWC, F32) DWConv #3", 1.0),
              ("OPERATOR_CALL", 0.01), ("native_call__to_dim_order_copy.out", 0.01)]
    ops = etdump_per_op_kind(events)
    assert list(ops)[:2] == ["Convolution (NHWC, F32) DWConv", "Fully Connected (NC, F32) GEMM"]
    assert ops["Fully Connected (NC, F32) GEMM"] == {"ms": pytest.approx(0.75), "nodes": 2}
    assert "Method::execute" not in ops and "DELEGATE_CALL" not in ops and "OPERATOR_CALL" not in ops
    assert ops["native_call__to_dim_order_copy.out"]["nodes"] == 1  # an op outside the delegate still counts


def test_a_real_executorch_profile_of_a_small_model(tmp_path):
    pytest.importorskip("executorch", reason="the executorch extra is not installed")
    result = profile_model("mobilenet_v3_small_075", 96, "default", runs=3, warmup=1, threads=1, work=tmp_path,
                           target="executorch")
    assert result["target"] == "executorch" and result["total_ms"] > 0 and result["macs"] > 0
    convs = [kind for kind in result["ops"] if kind.startswith("Convolution")]
    assert convs, result["ops"]  # XNNPACK's own operator names, one row per kind
    assert not any("#" in kind for kind in result["ops"])
    assert sum(r["ms"] for r in result["ops"].values()) == pytest.approx(result["total_ms"])
