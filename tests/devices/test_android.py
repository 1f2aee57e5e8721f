"""The whole adb path against the fake adb: detection, pinning, parsing, cooldown, disconnects, errors.

The fake adb (tests/devices/fixtures/fake_adb) is put first on PATH as ``adb``,
so this is the code path users run; the runner binaries are host-side
stand-ins that really run the model and print what the real tools print.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mobexport.devices.adb_client import parse_devices
from mobexport.devices.android import (
    AndroidDevice,
    CoolingPolicy,
    CpuCore,
    big_cores,
    cpu_mask,
    cpu_temperature,
    parse_getprop,
    parse_temperatures,
)
from mobexport.devices.android_runners import ExecutorRunner, OrtPerfTest, check_binary, elf_machine
from mobexport.devices.device import CaseFailed, CaseJob, DeviceDisconnectedError
from mobexport.devices.measure import MeasurePolicy
from mobexport.errors import DeviceError

from .conftest import FAKE_ADB, FAKE_EXECUTOR_RUNNER, FAKE_ORT_PERF_TEST, SERIAL, tiny_onnx

QUICK = MeasurePolicy(min_time_s=0.02, min_iters=5, max_iters=40, warmup_time_s=0.0, min_warmup=2, max_warmup=4)


class Sleeps(list):
    """An injected ``sleep`` that records instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def model(tmp_path) -> Path:
    return tiny_onnx(tmp_path / "artifact" / "model.onnx")


def job(model: Path, resolution: int = 32, **kwargs) -> CaseJob:
    return CaseJob(kind="onnx", model="tiny", resolution=resolution, artifact_path=model, policy=QUICK, **kwargs)


def device(**kwargs) -> AndroidDevice:
    kwargs.setdefault("runners", {"onnx": FAKE_ORT_PERF_TEST})
    kwargs.setdefault("sleep", Sleeps())
    return AndroidDevice(**kwargs)


# -- parsing -------------------------------------------------------------------------------------

def test_parse_adb_devices_long_listing():
    text = ("List of devices attached\n* daemon started successfully\n"
            "R5CT1234\tdevice usb:1-1 product:b0q model:SM_S908B device:b0q transport_id:3\n"
            "emulator-5554\toffline\nABC\tunauthorized usb:1-2 transport_id:4\n\n")
    devices = parse_devices(text)
    assert [(d.serial, d.state) for d in devices] == [("R5CT1234", "device"), ("emulator-5554", "offline"),
                                                      ("ABC", "unauthorized")]
    assert devices[0].details["model"] == "SM_S908B"


def test_big_cores_and_masks():
    tri = [CpuCore(i, f) for i, f in enumerate([1800000] * 4 + [2400000] * 3 + [3200000])]
    assert big_cores(tri) == [4, 5, 6, 7] and cpu_mask([4, 5, 6, 7]) == "f0"
    assert big_cores([CpuCore(i, 2000000) for i in range(4)]) == [0, 1, 2, 3]   # one cluster: all cores
    assert big_cores([CpuCore(0, None), CpuCore(1, None)]) == [0, 1]             # unreadable: all cores
    assert cpu_mask([0, 8]) == "101"


def test_temperatures_in_millidegrees_and_degrees():
    temps = parse_temperatures("cpu-1-0-usr 48500\nbattery 31\nskin-therm 36000\nbroken -\n")
    assert temps == {"cpu-1-0-usr": 48.5, "battery": 31.0, "skin-therm": 36.0}
    assert cpu_temperature(temps) == 48.5
    assert cpu_temperature({"battery": 31.0, "skin": 36.0}) == 36.0             # no CPU zone: hottest zone


def test_getprop_listing():
    props = parse_getprop("[ro.product.model]: [Pixel 8]\n[ro.build.version.release]: [14]\n[empty]: []\n")
    assert props == {"ro.product.model": "Pixel 8", "ro.build.version.release": "14", "empty": ""}


def test_executor_runner_output_with_and_without_per_iteration_lines():
    log = ("I 00:00:00.001 executorch:executor_runner.cpp:90] Model loaded in 12.5 ms.\n"
           "I 00:00:00.020 executorch:executor_runner.cpp:99] Iteration 1 of 3: 9.000000 ms\n"
           "I 00:00:00.030 executorch:executor_runner.cpp:99] Iteration 2 of 3: 4.000000 ms\n"
           "I 00:00:00.034 executorch:executor_runner.cpp:99] Iteration 3 of 3: 4.500000 ms\n"
           "I 00:00:00.035 executorch:executor_runner.cpp:101] Model executed successfully 3 time(s) in 17.5 ms.\n")
    out = ExecutorRunner().parse(log, "", 3)
    assert out.per_iteration and out.samples_s == pytest.approx([0.009, 0.004, 0.0045])
    assert out.init_s == pytest.approx(0.0125 + 0.009)
    legacy = ExecutorRunner().parse(log.replace("Iteration", "Step").replace("Model loaded in 12.5 ms.", ""), "", 3)
    assert not legacy.per_iteration and legacy.samples_s == pytest.approx([17.5e-3 / 3]) and legacy.init_s is None
    with pytest.raises(ValueError, match="Model executed successfully"):
        ExecutorRunner().parse("E executor_runner.cpp:50] Loading of method forward failed", "", 3)
    assert ExecutorRunner().argv("m.pte", 7, 4, "r.txt") == ["./executor_runner", "--model_path=m.pte",
                                                              "--num_executions=7", "--cpu_threads=4"]


def test_ort_perf_test_output_and_result_file():
    log = ("Session creation time cost: 0.25 s\nFirst inference time cost: 30 ms\n"
           "Total inference requests: 2\nPeak working set size: 104857600 bytes\n")
    result = "model,0.011,104857600,97,0\nmodel,0.012,104857600,97,1\n\nMin Latency: 0.011 s\n"
    out = OrtPerfTest().parse(log, result, 2)
    assert out.samples_s == [0.011, 0.012] and out.init_s == pytest.approx(0.28)
    assert out.reported_peak_bytes == 104857600
    with pytest.raises(ValueError, match="result file"):
        OrtPerfTest().parse(log, "", 2)
    assert OrtPerfTest().argv("m.onnx", 5, 0, "r.txt") == ["./onnxruntime_perf_test", "-e", "cpu", "-m", "times",
                                                            "-r", "5", "-I", "m.onnx", "r.txt"]


# -- runner binaries -----------------------------------------------------------------------------

def fake_elf(path: Path, machine: int) -> Path:
    header = bytearray(64)
    header[:4] = b"\x7fELF"
    header[4], header[5] = 2, 1          # 64-bit, little endian
    header[18:20] = machine.to_bytes(2, "little")
    path.write_bytes(bytes(header))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_runner_binary_checks(tmp_path):
    arm = fake_elf(tmp_path / "arm", 183)
    x86 = fake_elf(tmp_path / "x86", 62)
    assert elf_machine(arm.read_bytes()) == 183
    check_binary(arm, "arm64-v8a", "runner", "--flag")
    check_binary(FAKE_ORT_PERF_TEST, "arm64-v8a", "runner", "--flag")      # a script runs on any ABI
    with pytest.raises(DeviceError, match="built for x86_64, but the device's ABI is arm64-v8a"):
        check_binary(x86, "arm64-v8a", "runner", "--flag")
    (tmp_path / "text").write_text("hello")
    with pytest.raises(DeviceError, match="not an executable"):
        check_binary(tmp_path / "text", "arm64-v8a", "runner", "--flag")
    with pytest.raises(DeviceError, match="does not exist"):
        check_binary(tmp_path / "missing", "arm64-v8a", "runner", "--flag")


# -- the device through the fake adb -------------------------------------------------------------

def test_detects_the_phone(phone):
    d = device()
    assert d.available() and d.name == f"adb:{SERIAL}"
    info = d.info()
    assert info["model"] == "Pixel 8" and info["soc"] == "Google Tensor G3" and info["abi"] == "arm64-v8a"
    assert info["android"] == "14" and info["cores"] == 9 and info["big_cores"] == [4, 5, 6, 7, 8]
    assert info["max_freq_khz"]["8"] == 2910000


def test_measures_a_case_pinned_to_the_big_cores(phone, model):
    with device() as d:
        m = d.measure(job(model, threads=2))
        pushed = sorted(p.name for p in (phone.root() / "data/local/tmp/mobexport").iterdir())
        assert "onnxruntime_perf_test" in pushed and "tiny-32.onnx" not in pushed   # artifact removed after the case
    assert not (phone.root() / "data/local/tmp/mobexport").exists()                 # close() cleans up
    assert phone.taskset_masks() == ["1f0", "1f0"]                                  # probe + measured run
    assert QUICK.min_iters <= len(m.samples_s) <= QUICK.max_iters
    assert m.warmup >= QUICK.min_warmup and all(0 < s < 1 for s in m.samples_s)
    assert m.init_s > 0 and m.peak_memory_bytes > 10 * 2**20                         # a real VmHWM of the runner
    c = m.conditions
    assert c["affinity"] == [4, 5, 6, 7, 8] and c["taskset_mask"] == "1f0"
    assert c["governor"] == {str(i): "sched_pixel" for i in range(4, 9)}
    assert c["temperature_c_start"] == 35.0 and c["cooldown_s"] == 0
    assert c["peak_memory"].startswith("runner process VmHWM")
    assert m.tool_versions["onnxruntime_perf_test"].startswith("sha256:")
    pushes = [call for call in phone.calls() if "push" in call]
    assert [call[-1] for call in pushes] == ["/data/local/tmp/mobexport/onnxruntime_perf_test",
                                             "/data/local/tmp/mobexport/tiny-32.onnx"]
    assert all(call[:2] == ["-s", SERIAL] for call in phone.calls() if call[0] not in ("devices", "version"))
    runs = [c for c in phone.shell_commands() if "taskset" in c]
    assert len(runs) == 2 and all("taskset 1f0 ./onnxruntime_perf_test -e cpu -m times" in c and "-x 2" in c
                                  for c in runs)


def test_waits_for_the_phone_to_cool_down(phone, model):
    phone.update(thermal_schedule={"thermal_zone0": [51000, 47000, 43500, 39000]})
    sleeps = Sleeps()
    with device(sleep=sleeps, cooling=CoolingPolicy(threshold_c=42, poll_s=5, max_wait_s=60)) as d:
        m = d.measure(job(model))
    assert sleeps == [5, 5, 5]
    assert m.conditions["cooldown_s"] == 15 and m.conditions["temperature_c_start"] == 39.0
    assert not m.conditions["cooldown_gave_up"]


def test_gives_up_waiting_for_a_hot_phone_and_says_so(phone, model):
    phone.update(thermal_schedule={"thermal_zone0": [60000]})
    sleeps = Sleeps()
    with device(sleep=sleeps, cooling=CoolingPolicy(threshold_c=42, poll_s=4, max_wait_s=10)) as d:
        m = d.measure(job(model))
    assert sleeps == [4, 4, 2]
    assert m.conditions["cooldown_gave_up"] and m.conditions["temperature_c_start"] == 60.0


def test_a_crashing_runner_fails_the_case(phone, model, monkeypatch):
    monkeypatch.setenv("FAKE_RUNNER_EXIT", "139")
    with device() as d:
        with pytest.raises(CaseFailed, match="onnxruntime_perf_test exited with status 139: Segmentation fault"):
            d.measure(job(model))
    assert not (phone.root() / "data/local/tmp/mobexport").exists()      # still cleaned up


def test_disconnect_mid_sweep_is_a_clear_error(phone, model):
    phone.update(disconnect_on_run=3)                      # case 1: runs 1 and 2; case 2 dies in its probe
    with device() as d:
        d.measure(job(model))
        with pytest.raises(DeviceDisconnectedError, match=f"Android device '{SERIAL}' disconnected") as info:
            d.measure(job(model))
    assert "finished cases are kept" in info.value.one_line()


def test_no_device_attached(phones):
    state = device().availability()
    assert not state.ok and "no Android device attached" in state.reason


def test_several_devices_need_a_serial(phones):
    phones.add("AAA")
    phones.add("BBB")
    with pytest.raises(DeviceError, match=r"2 Android devices attached \(pick one with --device adb:SERIAL \(AAA, BBB\)\)"):
        device().require()
    assert device(serial="BBB").info()["model"] == "Pixel 8"


def test_unauthorized_and_unknown_serials(phones):
    phones.add("AAA", state="unauthorized")
    with pytest.raises(DeviceError, match="'AAA' is unauthorized.*accept the USB debugging prompt"):
        device().require()
    with pytest.raises(DeviceError, match="'ZZZ' is not attached"):
        device(serial="ZZZ").require()


def test_adb_missing(phones, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    state = device().availability()
    assert not state.ok and "adb not found on PATH" in state.reason
    with pytest.raises(DeviceError, match="--adb '.*nowhere' does not exist"):
        device(adb=tmp_path / "nowhere").require()


def test_explicit_adb_path_without_path_lookup(phone, monkeypatch):
    monkeypatch.setenv("PATH", f"{Path(os.sys.executable).parent}{os.pathsep}/usr/bin{os.pathsep}/bin")
    d = device(adb=FAKE_ADB)
    assert d.available() and d.info()["model"] == "Pixel 8"


def test_runner_missing_wrong_abi_and_kind_mismatch(phone, tmp_path):
    with pytest.raises(DeviceError, match="no ONNX Runtime onnxruntime_perf_test binary.*--ort-perf-test"):
        device(runners={}).check_kind("onnx")
    wrong = fake_elf(tmp_path / "onnxruntime_perf_test", 62)
    with pytest.raises(DeviceError, match="built for x86_64, but the device's ABI is arm64-v8a"):
        device(runners={"onnx": wrong}).check_kind("onnx")
    with pytest.raises(DeviceError, match="coreml artifacts cannot run on device 'adb'.*--device macos"):
        device().check_kind("coreml")


def test_runner_paths_from_the_environment(phone, monkeypatch):
    monkeypatch.setenv("MOBEXPORT_ORT_PERF_TEST", str(FAKE_ORT_PERF_TEST))
    device(runners={}).check_kind("onnx")


@pytest.mark.slow
def test_executor_runner_runs_a_real_program(phone, tmp_path):
    """ExecuTorch end to end on the fake phone (the host-side runner imports ExecuTorch: slow)."""
    import torch
    from executorch.exir import to_edge

    module = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()
    program = to_edge(torch.export.export(module, (torch.randn(1, 3, 32, 32),))).to_executorch()
    pte = tmp_path / "model.pte"
    pte.write_bytes(program.buffer)
    with device(runners={"executorch": FAKE_EXECUTOR_RUNNER}) as d:
        m = d.measure(CaseJob(kind="executorch", model="tiny", resolution=32, artifact_path=pte, policy=QUICK))
    assert len(m.samples_s) >= QUICK.min_iters and m.init_s > 0 and m.peak_memory_bytes > 0
    assert phone.taskset_masks() == ["1f0", "1f0"]
