"""The phone's other engines: ONNX Runtime execution providers and ExecuTorch delegates beyond XNNPACK."""

from __future__ import annotations

import pytest

from mobexport.cli import main
from mobexport.config import ExportConfig
from mobexport.devices.android import AndroidDevice
from mobexport.devices.android_runners import OrtPerfTest
from mobexport.devices.device import CaseJob
from mobexport.devices.runtimes.executorch import DELEGATE_RUNTIMES, ExecuTorchRunner, delegate_runs_here
from mobexport.devices.measure import MeasurePolicy
from mobexport.devices.registry import DeviceOptions, get_device
from mobexport.errors import DeviceError, TargetOptionError
from mobexport.export.targets.executorch import backends as executorch_backends
from mobexport.export.targets.executorch.target import ExecuTorchTarget

from .conftest import runner_binaries, tiny_onnx

QUICK = MeasurePolicy(min_time_s=0.02, min_iters=5, max_iters=40, warmup_time_s=0.0, min_warmup=2, max_warmup=4)


def test_the_execution_provider_goes_to_perf_test():
    assert OrtPerfTest().argv("m.onnx", 5, 2, "r.txt", ["-e", "nnapi"]) == [
        "./onnxruntime_perf_test", "-e", "nnapi", "-m", "times", "-r", "5", "-I", "-x", "2", "m.onnx", "r.txt"]


@pytest.mark.parametrize("ep, flag", [("qnn", "--use_qnn"), ("xnnpack", "--use_xnnpack")])
def test_an_execution_provider_the_phone_lacks_cannot_run_here(phone, tmp_path, ep, flag):
    model = tiny_onnx(tmp_path / "artifact" / "model.onnx")
    with AndroidDevice(runners=runner_binaries(tmp_path / "runners"), sleep=lambda s: None, ort_ep=ep) as device:
        with pytest.raises(DeviceError) as info:
            device.measure(CaseJob(kind="onnx", model="tiny", resolution=32, artifact_path=model, policy=QUICK))
    line = info.value.one_line()
    assert f"cannot run here: the onnxruntime_perf_test on adb:{phone.serial} has no {ep.upper()} execution provider" \
        in line and flag in line
    assert any(f"-e {ep} " in c for c in phone.sandbox.commands)


def test_ep_is_for_phones_only_and_checked(capsys, tmp_path):
    with pytest.raises(DeviceError, match="--ep nnapi chooses onnxruntime_perf_test's execution provider on a phone"):
        get_device("local", DeviceOptions(ort_ep="nnapi"))
    base = ["bench", "--models", "mobilenet_v3_small_075", "--targets", "onnx", "--resolutions", "96",
            "--out", str(tmp_path / "o")]
    assert main([*base, "--ep", "qnn"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "use it with --device adb" in err
    assert main([*base, "--ep", "tpu"]) == 2
    assert "argument --ep: invalid choice: 'tpu'" in capsys.readouterr().err


def test_a_core_ml_program_is_refused_on_a_phone_before_anything_is_pushed(phone, tmp_path):
    pte = tmp_path / "model.pte"
    pte.write_bytes(b"not run")
    job = CaseJob(kind="executorch", model="m", resolution=96, artifact_path=pte, policy=QUICK,
                  manifest={"target_details": {"backend": "coreml"}})
    with AndroidDevice(runners=runner_binaries(tmp_path / "runners"), sleep=lambda s: None) as device:
        with pytest.raises(DeviceError, match="cannot run here: a coreml-delegated .pte needs an Apple device"):
            device.measure(job)
    assert phone.services.count("sync:") == 0


def test_delegates_are_backends_and_say_where_they_run(monkeypatch, tmp_path):
    target = ExecuTorchTarget()
    for backend in ("vulkan", "coreml"):
        config = ExportConfig(model="m", target="executorch", target_options={"backend": backend})
        target.check_config(config)
        runnable, why = delegate_runs_here(backend)  # what the target's Lowered.can_run_here() answers
        assert not runnable and DELEGATE_RUNTIMES[backend][1] in why
    pte = tmp_path / "model.pte"
    pte.write_bytes(b"x")
    with pytest.raises(DeviceError, match="cannot run here: a vulkan-delegated .pte needs an Android GPU.*this host"):
        ExecuTorchRunner(pte, backend="vulkan").activate()
    monkeypatch.setitem(executorch_backends.DELEGATES, "vulkan",
                        ("no.such.module", "VulkanPartitioner"))
    with pytest.raises(TargetOptionError, match="--backend vulkan: this ExecuTorch build cannot lower to Vulkan"):
        executorch_backends.partitioner_for("vulkan")


@pytest.mark.slow
def test_a_vulkan_program_is_lowered_here_and_refused_by_a_phone_without_vulkan(phone, tmp_path):
    import torch

    from mobexport.export.targets.executorch.target import lower_program

    module = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                 torch.nn.Flatten()).eval()
    program = torch.export.export(module, (torch.randn(1, 3, 16, 16),))
    manager, coverage, _ = lower_program(program, "vulkan")
    assert coverage.backend == "vulkan" and coverage.ops_delegated > 0 and coverage.delegate_subgraphs >= 1
    pte = tmp_path / "model.pte"
    pte.write_bytes(manager.buffer)
    job = CaseJob(kind="executorch", model="tiny", resolution=16, artifact_path=pte, policy=QUICK,
                  manifest={"target_details": {"backend": "vulkan"}})
    with AndroidDevice(runners=runner_binaries(tmp_path / "runners"), sleep=lambda s: None) as device:
        with pytest.raises(DeviceError, match="cannot run here: a vulkan-delegated .pte needs an Android GPU"):
            device.measure(job)
