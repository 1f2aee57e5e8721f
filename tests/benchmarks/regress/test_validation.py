"""The validation script's counting, on synthetic runs (measuring is a real sweep: run it by hand)."""

from __future__ import annotations

from rich.console import Console

from mobexport.benchmarks.regress.baseline import Baseline, write_baseline
from mobexport.benchmarks.regress.validation import analyze
from mobexport.benchmarks.regress.verdict import RegressionSettings


def test_counts_false_alarms_and_detections(synthetic, tmp_path):
    from datetime import datetime, timezone

    from mobexport.benchmarks.results.records import append_record

    baseline = write_baseline(Baseline.from_records(synthetic(seed=0), name="b"), tmp_path / "b.json")
    inject = "mobile_former_52m@160=0.3"
    for i in range(3):
        for label, slowdown in (("clean", {}), ("inject", {("mobile_former_52m", 160): 1.3})):
            path = tmp_path / "work" / "runs" / f"{label}-{i:02d}" / "results.jsonl"
            path.parent.mkdir(parents=True)
            records = synthetic(seed=10 + i, slowdown=slowdown, start=datetime(2026, 11, 2 + i, tzinfo=timezone.utc))
            if label == "clean" and i == 2:  # one run where an un-injected point really got slower
                records = synthetic(seed=10 + i, slowdown={("mobile_former_294m", 192): 1.5})
            for record in records:
                append_record(path, record)
    console = Console(width=200, record=True)
    clean = analyze(tmp_path / "work", "clean", baseline, "", RegressionSettings(), console)
    assert "runs with a false alarm (a non-injected point flagged): 1/3 (1 of 18" in clean
    injected = analyze(tmp_path / "work", "inject", baseline, inject, RegressionSettings(), console)
    assert "injected points flagged: 3/3" in injected
    assert "runs with a false alarm (a non-injected point flagged): 0/3 (0 of 15" in injected
    assert "| mobile_former_52m/onnx@160 (+30% injected) |" in injected
