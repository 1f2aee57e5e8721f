"""Paired latency (regress --paired): interleaved rounds of both builds, a stand-in device, the real verdict."""

from __future__ import annotations

import random

import pytest
from rich.console import Console

from mobexport.benchmarks.regress.paired_latency import judge, pair_cases, run_paired
from mobexport.benchmarks.results.records import BenchRecord, CaseKey, append_record
from mobexport.devices.device import Measurement
from mobexport.errors import BenchmarkError

CASES = [CaseKey(model=m, target="onnx", resolution=r) for m in ("mobile_former_52m", "mobilenet_v3_large_100")
         for r in (160, 224)]


def write_build(root, name):
    results = root / name / "results.jsonl"
    results.parent.mkdir(parents=True)
    for case in CASES:
        artifact = root / name / f"{case.model}-{case.resolution}.onnx"
        artifact.write_text(name)
        append_record(results, BenchRecord(case=case, samples_ms=[1.0], artifact={"path": str(artifact)}))
    return results


class DriftingDevice:
    """Each call is slowed by the machine's drift of the moment (up to 10%), the candidate also by ``slowdown``."""

    def __init__(self, slowdown):
        self.slowdown, self.rng, self.order = slowdown, random.Random(1), []

    def measure(self, job):
        self.order.append(job.label)
        side = "candidate" if "(candidate)" in job.label else "baseline"
        factor = self.slowdown.get((job.model, job.resolution), 1.0) if side == "candidate" else 1.0
        drift = 1 + 0.1 * self.rng.random()
        base = job.resolution / 100
        return Measurement(samples_s=[base * factor * drift * (1 + 0.003 * i) for i in range(9)], warmup=1)


def test_a_ten_percent_slowdown_is_found_at_its_case_through_the_drift(tmp_path):
    base, cand = write_build(tmp_path, "base"), write_build(tmp_path, "cand")
    device = DriftingDevice({("mobile_former_52m", 224): 1.10})
    console = Console(file=open(tmp_path / "log", "w"), width=200)
    status = run_paired(base.parent, cand, 0.05, 0.95, 12, 0, console, device=device)
    rows = [line for line in (tmp_path / "log").read_text().splitlines() if "/onnx@" in line]
    regressed = [line for line in rows if "regressed" in line]
    assert status == 1
    assert len(regressed) == 1 and "mobile_former_52m/onnx@224" in regressed[0], rows
    assert len(device.order) == 12 * 2 * len(CASES)
    assert device.order[:8] != sorted(device.order[:8])  # shuffled within a round


def test_the_verdict_uses_the_paired_ratio_and_its_interval():
    steady = {CASES[0]: [1.10, 1.11, 1.09, 1.10, 1.105], CASES[1]: [1.0, 1.01, 0.99, 1.0, 1.0]}
    points = {p.case: p for p in judge(steady, min_effect=0.05)}
    assert points[CASES[0]].status.value == "regressed" and points[CASES[0]].ci_low > 1.05
    assert points[CASES[1]].status.value == "unchanged"
    noisy = {CASES[0]: [1.4, 0.9, 1.3, 0.85, 1.2]}
    assert judge(noisy, min_effect=0.05)[0].status.value == "inconclusive"


def test_builds_without_a_shared_case_are_refused(tmp_path):
    base = write_build(tmp_path, "base")
    other = tmp_path / "other" / "results.jsonl"
    other.parent.mkdir()
    append_record(other, BenchRecord(case=CaseKey(model="x", target="onnx"), samples_ms=[1.0]))
    with pytest.raises(BenchmarkError, match="no case with an existing artifact is in both"):
        pair_cases(base, other)
