"""Hand-written results, baselines and a device that measures nothing, for the sweep/regress reliability tests.

No export and no timing: the behaviour under test is what happens to files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mobexport.benchmarks.regress.baseline import Baseline, write_baseline
from mobexport.benchmarks.sweep.artifacts import Prepared
from mobexport.benchmarks.results.records import BenchRecord, CaseKey
from mobexport.benchmarks.results.stats import summarize
from mobexport.cli import main
from mobexport.devices.device import EAGER, Availability, CaseJob, Device, Measurement

REFERENCE = "mobilenet_v3_large_100"
OTHER = "mobile_former_52m"


def record(model: str = OTHER, resolution: int = 160, target: str = "onnx", seed: int = 0,
           scale: float = 1.0) -> BenchRecord:
    rng = np.random.default_rng([seed, resolution, len(model)])
    samples = [float(v) for v in (5.0 * scale * resolution / 160) * np.exp(rng.normal(0, 0.05, 20))]
    return BenchRecord(case=CaseKey(model=model, target=target, resolution=resolution),
                       latency_ms=summarize(samples).to_dict(), samples_ms=samples, throughput_ips=200.0,
                       macs=1000 * resolution, params=10, warmup=2, iters=20,
                       device_info={"name": "local", "cpu": "Test CPU", "cores": 2},
                       tool_versions={"mobexport": "0.1.0"}, timestamp="2026-12-01T00:00:00+00:00")


def sweep_records(seed: int = 0, models=(REFERENCE, OTHER), resolutions=(160, 192)) -> list[BenchRecord]:
    return [record(m, r, seed=seed) for m in models for r in resolutions]


def write_results(path: Path, records, tail: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(r.to_json() + "\n" for r in records) + tail)
    return path


def write_baseline_file(path: Path, records=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_baseline(Baseline.from_records(records or sweep_records(seed=0), name=path.stem), path)


class InstantDevice(Device):
    """A device that 'measures' every case at once (fixed samples), counting the jobs it got."""

    kinds = ("onnx", EAGER)

    def __init__(self):
        self.jobs: list[CaseJob] = []

    @property
    def name(self) -> str:
        return "local"

    def availability(self) -> Availability:
        return Availability(True)

    def info(self) -> dict:
        return {"name": "local", "cpu": "Test CPU", "cores": 2}

    def measure(self, job: CaseJob) -> Measurement:
        self.jobs.append(job)
        return Measurement(samples_s=[0.004, 0.005, 0.0045], warmup=1, init_s=0.01, peak_memory_bytes=1024)


def instant_prepare(case: CaseKey, out_dir: Path, on_step=None) -> Prepared:
    return Prepared(case, None, 1000 * case.resolution, 10)


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_line_error(status: int, err: str, *fragments: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert status == 2, err
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def json_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
