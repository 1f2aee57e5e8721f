"""Per-op profiles on the emulated phone: the stand-in runners write real ORT profile JSON and ETDump files."""

from __future__ import annotations

import json

import pytest

from mobexport.cli import main
from mobexport.devices.android import AndroidDevice
from mobexport.benchmarks.profile.on_phone import profile_on_device

from .conftest import runner_binaries, tiny_onnx


def test_ort_profile_from_the_phone(phone, tmp_path):
    model = tiny_onnx(tmp_path / "artifact" / "model.onnx")
    with AndroidDevice(runners=runner_binaries(tmp_path / "runners"), sleep=lambda s: None) as device:
        profile = profile_on_device(device, "onnx", model, "tiny", 32, runs=5, threads=1)
        left = sorted(p.name for p in (phone.sandbox.root / "data/local/tmp/mobexport").iterdir())
    assert left == ["onnxruntime_perf_test", "result.txt"]            # trace pulled and removed, artifact removed
    assert {"Conv", "Gemm", "GlobalAveragePool"} <= set(profile["ops"])
    assert profile["total_ms"] == pytest.approx(sum(r["ms"] for r in profile["ops"].values())) and profile["total_ms"] > 0
    assert profile["ops"]["Conv"]["nodes"] == 1 and profile["device"]["model"] == "Pixel 8"
    runs = [c for c in phone.sandbox.commands if "time -v" in c]
    assert len(runs) == 1 and "taskset 1f0 time -v ./onnxruntime_perf_test" in runs[0] and "-p ort_profile" in runs[0]


@pytest.mark.slow
def test_etdump_from_the_phone(phone, tmp_path):
    import torch

    from mobexport.export.targets.executorch.target import lower_program

    module = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                 torch.nn.Flatten()).eval()
    manager, _, _ = lower_program(torch.export.export(module, (torch.randn(1, 3, 16, 16),)), "portable",
                                  etrecord=True)
    pte, etrecord = tmp_path / "model.pte", tmp_path / "etrecord.bin"
    pte.write_bytes(manager.buffer)
    manager.get_etrecord().save(str(etrecord))
    with AndroidDevice(runners=runner_binaries(tmp_path / "runners"), sleep=lambda s: None) as device:
        profile = profile_on_device(device, "executorch", pte, "tiny", 16, runs=3, threads=1, etrecord=etrecord)
    assert any("convolution" in op for op in profile["ops"]), profile["ops"]
    assert profile["total_ms"] > 0 and profile["target"] == "executorch"
    assert any("--etdump_path=trace.etdp" in c for c in phone.sandbox.commands)
    assert profile["etrecord"] == str(etrecord)


def test_profile_on_a_device_that_is_not_a_phone_is_one_line(capsys, tmp_path):
    status = main(["profile", "--device", "cuda", "--models", "mobilenet_v3_small_075", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1 and "per-op profiles run on this host or on a phone" in lines[0], err


@pytest.mark.slow
def test_profile_command_on_the_phone(phone, capsys, tmp_path):
    """MNV3-S at 96 px exported, profiled on the emulated phone, table and stacked bars written."""
    out = tmp_path / "out"
    ort = runner_binaries(tmp_path / "runners")["onnx"]
    status = main(["profile", "--device", f"adb:{phone.serial}", "--models", "mobilenet_v3_small_075",
                   "--resolution", "96", "--runs", "3", "--warmup", "0", "--ort-perf-test", str(ort),
                   "--out", str(out)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    profiles = json.loads((out / "profile.json").read_text())
    assert profiles[0]["device"]["name"] == f"adb:{phone.serial}" and profiles[0]["ops"]
    assert (out / "op_time.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "time per op type" in captured.out
