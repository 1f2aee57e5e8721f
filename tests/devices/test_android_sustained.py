"""``bench --sustained``: one case timed without pause on the emulated phone, heating up along its thermal trace."""

from __future__ import annotations

import json

import pytest

from mobexport.benchmarks.sweep import sustained as sustained_report
from mobexport.cli import main
from mobexport.devices.android import AndroidDevice
from mobexport.devices.android_sustained import bucketize, parse_duration, run_sustained
from mobexport.devices.device import CaseJob
from mobexport.devices.measure import MeasurePolicy
from mobexport.errors import BenchmarkError

from .adbd import PhoneSpec
from .conftest import runner_binaries, tiny_onnx

QUICK = MeasurePolicy(min_time_s=0.02, min_iters=5, max_iters=40, warmup_time_s=0.0, min_warmup=2, max_warmup=4)
HEATING = {"thermal_zone0": [36000, 40000, 44000, 48000, 52000, 55000, 57000, 58000]}
BIG_CLOCK = "/sys/devices/system/cpu/cpu8/cpufreq/scaling_cur_freq"


def test_durations():
    assert parse_duration("10m") == 600 and parse_duration("90s") == 90 and parse_duration("1.5h") == 5400
    assert parse_duration("3") == 3
    for bad in ("3x", "-1s", "0", "ten minutes"):
        with pytest.raises(BenchmarkError, match="is not a duration"):
            parse_duration(bad)


def test_buckets_take_medians_and_the_last_reading():
    samples = [(0.1, 10.0), (0.5, 12.0), (0.9, 11.0), (1.2, 14.0), (1.8, 16.0), (2.05, 15.0)]
    telemetry = [{"t_s": 0.95, "cpu_temperature_c": 40.0, "big_core_khz": {"8": 2000000}},
                 {"t_s": 1.9, "cpu_temperature_c": 45.0, "big_core_khz": {"8": 1000000, "7": 2000000}}]
    b = bucketize(samples, telemetry, duration_s=2, bucket_s=1)
    assert [(x.samples, x.median_ms, x.cpu_temperature_c, x.big_core_khz) for x in b] == [
        (3, 11.0, 40.0, 2000000), (3, 15.0, 45.0, 1500000)]          # the overrun sample lands in the last bucket


def test_a_sustained_run_on_the_emulated_phone(phones, tmp_path):
    emulated = phones.add(PhoneSpec.from_fixture(thermal_trace=HEATING,
                                                 traces={BIG_CLOCK: [2910000, 2600000, 2100000, 1800000]}))
    model = tiny_onnx(tmp_path / "artifact" / "model.onnx")
    job = CaseJob(kind="onnx", model="tiny", resolution=32, threads=2, artifact_path=model, policy=QUICK)
    with AndroidDevice(runners=runner_binaries(tmp_path / "runners"), sleep=lambda s: None) as device:
        run = run_sustained(device, job, duration_s=3, bucket_s=1, chunk_s=0.2)
    assert len(run.buckets) == 3 and sum(b.samples for b in run.buckets) == len(run.samples) > 0
    temps = [r["cpu_temperature_c"] for r in run.telemetry]
    assert temps[0] == 36.0 and temps == sorted(temps) and temps[-1] > temps[0]     # the fixture trace heats up
    clocks = [r["big_core_khz"]["8"] for r in run.telemetry]
    assert clocks[0] == 2910000 and clocks[-1] < clocks[0]
    assert set(run.telemetry[0]["big_core_khz"]) == {"4", "5", "6", "7", "8"}
    assert run.affinity == [4, 5, 6, 7, 8] and set(emulated.sandbox.taskset_masks) == {"1f0"}
    filled = [b for b in run.buckets if b.median_ms]
    assert run.throttling_ratio == pytest.approx(filled[-1].median_ms / filled[0].median_ms)

    written = sustained_report.write(run, tmp_path / "out", "none")
    assert [p.name for p in written] == ["sustained.json", "sustained.md", "sustained.png"]
    assert written[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(written[0].read_text())
    assert data["throttling_ratio"] == pytest.approx(run.throttling_ratio) and len(data["buckets"]) == 3
    summary = written[1].read_text()
    assert "throttling ratio (last bucket median / first bucket median):" in summary
    assert "Pixel 8" in summary and "2 threads" in summary and "fp32" in summary
    assert not (emulated.sandbox.root / "data/local/tmp/mobexport/tiny-32.onnx").exists()  # artifact removed


def run_cli(capsys, *argv):
    status = main(["bench", *argv])
    return status, capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (("--sustained", "3x"), "--sustained '3x' is not a duration"),
    (("--sustained-bucket", "1s"), "--sustained-bucket without --sustained"),
    (("--sustained", "3s", "--resolutions", "96,128"), "--sustained times one case, but the sweep has 2"),
    (("--sustained", "3s"), "'local' has neither"),
])
def test_bad_sustained_input_is_one_line_exit_2(capsys, tmp_path, argv, message):
    base = ["--models", "mobilenet_v3_small_075", "--targets", "onnx", "--out", str(tmp_path / "o")]
    if "--resolutions" not in argv:
        base += ["--resolutions", "96"]
    status, err = run_cli(capsys, *base, *argv)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1 and message in lines[0], err
