"""``mobexport bench`` end to end, and every bad input it must refuse in one line (exit 2)."""

from __future__ import annotations

import csv
import json
import stat

import pytest

from mobexport.cli import main

from ...devices.conftest import phone, phones, runner_binaries  # noqa: F401  (fixtures)

SMALL = "mobilenet_v3_small_100"
# One model and no baseline measured: no latency x baseline plot (test_sweep_plots covers it).
PNGS = ["latency_per_mac.png", "latency_vs_gmacs.png", "latency_vs_resolution.png", "macs_vs_resolution.png"]


def run(capsys, *argv):
    status = main(["bench", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_line_error(status, err, *fragments):
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert status == 2, err
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


SWEEP = ("--models", SMALL, "--targets", "onnx", "--resolutions", "96")


@pytest.mark.parametrize("argv, fragments", [
    (("--models", "mobile_former_249m", "--targets", "onnx", "--resolutions", "96"), ["unknown model 'mobile_former_249m'"]),
    (("--models", SMALL, "--targets", "tflite", "--resolutions", "96"), ["unknown target 'tflite'"]),
    (("--models", SMALL, "--targets", "onnx", "--resolutions", "100"), ["resolution 100 is not a multiple of 32"]),
    ((*SWEEP, "--device", "phone"), ["unknown device 'phone'", "adb[:SERIAL]"]),
    ((*SWEEP, "--device", "cuda"), ["device 'cuda' is not available: no NVIDIA GPU"]),
    ((*SWEEP, "--device", "macos"), ["device 'macos:ALL' is not available", "needs macOS"]),
    (("--suite", "no_such_suite"), ["unknown suite 'no_such_suite'", "mobile_former_vs_mobilenetv3"]),
    (("--models", SMALL), ["nothing to measure: --targets, --resolutions not given"]),
    ((*SWEEP, "--min-time", "-1"), ["argument --min-time", "> 0"]),
    ((*SWEEP, "--baseline", "resnet18"), ["baseline 'resnet18' is not one of the swept models"]),
    ((*SWEEP, "--quantize", "int3"), ["int3"]),
    ((*SWEEP, "--cpus", "4096"), ["CPU(s) 4096 are not usable here"]),
    ((*SWEEP, "--batch", "4"), ["a sweep exports static artifacts for batch 1", "--targets pytorch"]),
    ((*SWEEP, "--export-jobs", "0"), ["argument --export-jobs", "positive integer"]),
])
def test_bad_input_is_one_line(capsys, tmp_path, argv, fragments):
    status, _, err = run(capsys, *argv, "--out", str(tmp_path / "out"))
    assert_one_line_error(status, err, *fragments)
    assert not (tmp_path / "out").exists()                  # refused before anything was written


def test_adb_missing(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    status, _, err = run(capsys, *SWEEP, "--device", "adb", "--out", str(tmp_path / "out"))
    assert_one_line_error(status, err, "device 'adb' is not available: adb not found on PATH")


def test_no_phone_attached(phones, capsys, tmp_path):  # noqa: F811
    status, _, err = run(capsys, *SWEEP, "--device", "adb", "--out", str(tmp_path / "out"))
    assert_one_line_error(status, err, "no Android device attached")


def test_phone_runner_missing_or_for_another_abi(phone, capsys, tmp_path):  # noqa: F811
    status, _, err = run(capsys, *SWEEP, "--device", "adb", "--out", str(tmp_path / "out"))
    assert_one_line_error(status, err, "no ONNX Runtime onnxruntime_perf_test binary", "--ort-perf-test PATH")
    x86 = tmp_path / "onnxruntime_perf_test"
    header = bytearray(64)
    header[:6], header[18:20] = b"\x7fELF\x02\x01", (62).to_bytes(2, "little")
    x86.write_bytes(bytes(header))
    x86.chmod(x86.stat().st_mode | stat.S_IXUSR)
    status, _, err = run(capsys, *SWEEP, "--device", "adb", "--ort-perf-test", str(x86), "--out", str(tmp_path / "o"))
    assert_one_line_error(status, err, "built for x86_64, but the device's ABI is arm64-v8a")


def test_artifact_device_mismatch(phone, capsys, tmp_path):  # noqa: F811
    status, _, err = run(capsys, "--models", SMALL, "--targets", "pytorch", "--resolutions", "96", "--device", "adb",
                         "--out", str(tmp_path / "out"))
    assert_one_line_error(status, err, f"pytorch artifacts cannot run on device 'adb:{phone.serial}'", "--device local")


def test_list_suites(capsys):
    status, out, _ = run(capsys, "--list-suites")
    assert status == 0
    for name in ("mobile_former_vs_mobilenetv3", "zoo_overview", "smoke"):
        assert name in out


def test_eager_sweep_writes_every_output_and_resumes(capsys, tmp_path):
    out = tmp_path / "bench"
    argv = ("--models", SMALL, "--targets", "pytorch", "--resolutions", "96", "--min-time", "0.05",
            "--warmup-time", "0", "--min-iters", "3", "--threads", "1", "--out", str(out))
    status, stdout, err = run(capsys, *argv)
    assert status == 0, err
    assert sorted(p.name for p in out.iterdir()) == sorted([".bench.lock", "results.jsonl", "curves.csv", "summary.md", *PNGS])
    record = json.loads((out / "results.jsonl").read_text())
    assert record["status"] == "ok" and record["case"]["target"] == "pytorch" and record["case"]["threads"] == 1
    assert record["macs"] > 10_000_000 and record["conditions"]["threads_applied"] == "torch.set_num_threads"
    rows = list(csv.DictReader((out / "curves.csv").open()))
    assert [(r["model"], r["resolution"], r["status"]) for r in rows] == [(SMALL, "96", "ok")]
    assert SMALL in stdout and "median ms" in stdout
    assert f"| {SMALL} | 96 |" in (out / "summary.md").read_text()
    for png in PNGS:
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    status, _, err = run(capsys, *argv)                     # nothing left to measure
    assert status == 0 and "1 case(s) already in" in err
    assert len((out / "results.jsonl").read_text().splitlines()) == 1


@pytest.mark.slow
def test_onnx_sweep_on_the_emulated_phone(phone, capsys, tmp_path):  # noqa: F811
    """Export with the pipeline, push, pin, run and parse through the real adb client and the emulated phone."""
    out = tmp_path / "bench"
    ort = runner_binaries(tmp_path / "runners")["onnx"]
    status, stdout, err = run(capsys, *SWEEP, "--device", f"adb:{phone.serial}", "--ort-perf-test", str(ort),
                              "--min-time", "0.05", "--out", str(out))
    assert status == 0, err
    record = json.loads((out / "results.jsonl").read_text())
    assert record["case"]["device"] == f"adb:{phone.serial}" and record["device_info"]["soc"] == "Google Tensor G3"
    assert record["conditions"]["taskset_mask"] == "1f0" and record["peak_memory_bytes"] > 0
    assert (out / "artifacts/r96" / SMALL / "onnx/manifest.json").is_file()


@pytest.mark.slow
def test_local_onnx_sweep_reuses_artifacts(capsys, tmp_path):
    out = tmp_path / "bench"
    argv = ("--models", f"{SMALL},mobile_former_26m", "--targets", "onnx", "--resolutions", "96,128",
            "--baseline", SMALL, "--min-time", "0.1", "--out", str(out))
    status, stdout, err = run(capsys, *argv)
    assert status == 0, err
    manifests = sorted(out.glob("artifacts/r*/*/onnx/manifest.json"))
    assert len(manifests) == 4
    stamps = [m.stat().st_mtime_ns for m in manifests]
    (out / "results.jsonl").unlink()                        # measure again: the exports are reused
    status, _, err = run(capsys, *argv)
    assert status == 0, err
    assert [m.stat().st_mtime_ns for m in manifests] == stamps
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert all(r["conditions"]["artifact_reused"] for r in records)
