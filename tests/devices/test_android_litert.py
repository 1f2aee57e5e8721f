"""LiteRT on Android: ``benchmark_model``'s command line and log, and a case timed on the emulated phone."""

from __future__ import annotations

import importlib.util

import pytest

from mobexport.devices.android import AndroidDevice
from mobexport.devices.android_runners import RUNNERS, BenchmarkModel
from mobexport.devices.device import CaseJob
from mobexport.devices.measure import MeasurePolicy

from .conftest import runner_binaries

LOG = """INFO: Graph: [/data/local/tmp/mobexport/m-96.tflite]
INFO: Initialized session in 31.466ms.
INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=23 first=60823 curr=54100 min=53000 max=60823 avg=55487.6 std=1500
INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=50 first=54620 curr=53562 min=52981 max=56923 avg=53961.8 std=781
INFO: Inference timings in us: Init: 31466, First inference: 60823, Warmup (avg): 55487.6, Inference (avg): 53961.8
INFO: Memory footprint delta from the start of the tool (MB): init=3.5 overall=9.4
INFO: Overall peak memory footprint (MB) via periodic monitoring: 15.25
"""


def test_benchmark_model_log_gives_the_timed_phases_mean_and_init():
    out = BenchmarkModel().parse(LOG, "", 50)
    assert not out.per_iteration and out.samples_s == pytest.approx([0.0539618])
    assert out.load_s == pytest.approx(0.031466) and out.first_s == pytest.approx(0.060823)
    assert out.init_s == pytest.approx(0.031466 + 0.060823)
    assert out.reported_peak_bytes == int(15.25 * 2**20)
    assert "mean of 50 runs" in out.notes[0] and "min 52.981 ms" in out.notes[0]
    with pytest.raises(ValueError, match="count="):
        BenchmarkModel().parse("ERROR: Failed to load model", "", 5)


def test_benchmark_model_command_line():
    assert RUNNERS["litert"].binary == "benchmark_model"
    assert BenchmarkModel().argv("m.tflite", 7, 4, "r.txt") == [
        "./benchmark_model", "--graph=m.tflite", "--warmup_runs=1", "--num_runs=7", "--min_secs=0",
        "--warmup_min_secs=0", "--use_xnnpack=true", "--num_threads=4"]
    assert "--num_threads" not in " ".join(BenchmarkModel().argv("m.tflite", 7, 0, "r.txt"))


@pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("litert_torch", "ai_edge_litert")),
                    reason='the litert extra is not installed (pip install "mobexport[litert]")')
def test_a_tflite_case_is_timed_on_the_phone(phone, tmp_path):
    import litert_torch
    import torch

    module = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()
    model = tmp_path / "model.tflite"
    litert_torch.convert(module, (torch.randn(1, 3, 32, 32),)).export(str(model))
    policy = MeasurePolicy(min_time_s=0.02, min_iters=5, max_iters=40, warmup_time_s=0.0, min_warmup=2, max_warmup=4)
    with AndroidDevice(runners=runner_binaries(tmp_path / "runners"), sleep=lambda s: None) as d:
        m = d.measure(CaseJob(kind="litert", model="tiny", resolution=32, artifact_path=model, policy=policy))
    assert len(m.samples_s) == 1 and m.samples_s[0] > 0 and m.init_s > 0
    assert "benchmark_model logs no per-run times" in m.conditions["notes"][0]
    assert "benchmark_model" in m.tool_versions
