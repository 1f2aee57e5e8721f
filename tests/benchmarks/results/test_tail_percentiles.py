"""p95 and p99 beside the median and p90: in the statistics, the curve rows and the summary table."""

from __future__ import annotations

import pytest

from mobexport.benchmarks.results.curves import COLUMNS, row_of
from mobexport.benchmarks.results.records import BenchRecord, CaseKey
from mobexport.benchmarks.results.stats import summarize
from mobexport.benchmarks.sweep.summary import TABLE_COLUMNS


def test_tail_percentiles_interpolate_between_samples():
    stats = summarize([float(v) for v in range(1, 101)])       # 1 .. 100 ms
    assert stats.median == pytest.approx(50.5) and stats.p90 == pytest.approx(90.1)
    assert stats.p95 == pytest.approx(95.05) and stats.p99 == pytest.approx(99.01)
    one = summarize([3.0])
    assert one.p95 == one.p99 == 3.0


def test_rows_and_summary_carry_p95_and_p99():
    samples = [10.0] * 97 + [50.0, 60.0, 70.0]                 # a slow tail the median hides
    record = BenchRecord(case=CaseKey(model="m", target="onnx", resolution=96), status="ok",
                         latency_ms=summarize(samples).to_dict(), samples_ms=samples, throughput_ips=100.0,
                         macs=10**9, params=10**6, peak_memory_bytes=2**20, init_ms=1.0, artifact={}, error=None)
    row = row_of(record)
    assert row["latency_median_ms"] == 10.0 and row["latency_p95_ms"] == 10.0
    assert row["latency_p99_ms"] == pytest.approx(60.1)
    assert {"latency_p95_ms", "latency_p99_ms"} <= set(COLUMNS)
    assert ("p95 ms", "latency_p95_ms") in TABLE_COLUMNS and ("p99 ms", "latency_p99_ms") in TABLE_COLUMNS
    old = dict(record.latency_ms)
    del old["p95"], old["p99"]                                  # a record written before p95/p99 existed
    assert row_of(BenchRecord(**{**record.__dict__, "latency_ms": old}))["latency_p99_ms"] is None
