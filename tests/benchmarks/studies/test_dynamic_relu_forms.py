"""The DY-ReLU form benchmark: every form lowers for both runtimes, matches the original, and is timed."""

from __future__ import annotations

import json

import pytest

from mobexport.benchmarks.studies import dynamic_relu_forms as bench


@pytest.mark.slow
def test_single_op_case_runs_side_by_side(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("executorch")
    status = bench.main(["--models", "", "--resolution", "96", "--rounds", "2", "--iters", "2", "--out", str(tmp_path)])
    assert status == 0
    rows = json.loads((tmp_path / "results.json").read_text())
    assert {(r["runtime"], r["variant"]) for r in rows} == {(rt, v) for rt in bench.RUNTIMES for v in bench.VARIANTS}
    assert all(r["outputs_match"] and r["median_ms"] > 0 for r in rows)
    xnnpack = {r["variant"]: r["lowering"] for r in rows if r["runtime"] == "xnnpack"}
    assert xnnpack["maximum"]["portable_ops"] == {}  # the folded form stays inside the delegate
    assert (tmp_path / "dynamic_relu_forms.png").stat().st_size > 0
