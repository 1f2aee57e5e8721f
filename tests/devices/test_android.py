"""The whole adb path through the real ``adb`` client and the adbd emulator (tests/devices/adbd).

The emulated phone speaks the ADB wire protocol on 127.0.0.1; the Debian adb
client and its server are what the harness drives, exactly as with a phone.
The runner binaries pushed are ELF headers for the phone's ABI; the emulated
phone runs host-side stand-ins in their place that really run the model and
print what the real tools print.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mobexport.devices.adb_client import AttachedDevice, parse_devices
from mobexport.devices.android import (
    AndroidDevice,
    CoolingPolicy,
    CpuCore,
    big_cores,
    choose_device,
    cores_from_files,
    cpu_mask,
    cpu_temperature,
    parse_getprop,
    parse_grep_files,
    parse_temperatures,
    split_time_output,
)
from mobexport.devices.android_runners import ExecutorRunner, OrtPerfTest, check_binary, elf_machine
from mobexport.devices.device import CaseFailed, CaseJob, DeviceDisconnectedError
from mobexport.devices.measure import MeasurePolicy
from mobexport.errors import DeviceError

from .adbd import PhoneSpec
from .adbd.shell import STANDINS
from .conftest import ADB, fake_elf, runner_binaries, tiny_onnx

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


@pytest.fixture
def runners(tmp_path) -> dict[str, Path]:
    return runner_binaries(tmp_path / "runners")


def device(runners: dict, **kwargs) -> AndroidDevice:
    kwargs.setdefault("sleep", Sleeps())
    return AndroidDevice(runners=runners, **kwargs)


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

def test_runner_binary_checks(tmp_path):
    arm = fake_elf(tmp_path / "arm", 183)
    x86 = fake_elf(tmp_path / "x86", 62)
    assert elf_machine(arm.read_bytes()) == 183
    check_binary(arm, "arm64-v8a", "runner", "--flag")
    check_binary(STANDINS / "onnxruntime_perf_test", "arm64-v8a", "runner", "--flag")   # a script: any ABI
    with pytest.raises(DeviceError, match="built for x86_64, but the device's ABI is arm64-v8a"):
        check_binary(x86, "arm64-v8a", "runner", "--flag")
    (tmp_path / "text").write_text("hello")
    with pytest.raises(DeviceError, match="not an executable"):
        check_binary(tmp_path / "text", "arm64-v8a", "runner", "--flag")
    with pytest.raises(DeviceError, match="does not exist"):
        check_binary(tmp_path / "missing", "arm64-v8a", "runner", "--flag")


def test_real_client_output_parsing():
    # adb 29 pads the serial with spaces (not a tab) and puts push/pull errors on stdout.
    listed = parse_devices("List of devices attached\n127.0.0.1:39701        device product:shiba model:Pixel_8 "
                           "device:shiba transport_id:1\n127.0.0.1:40000        offline\n\n")
    assert [(d.serial, d.state) for d in listed] == [("127.0.0.1:39701", "device"), ("127.0.0.1:40000", "offline")]
    assert listed[0].details["model"] == "Pixel_8"
    files = parse_grep_files("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq:1704000\n"
                             "/sys/devices/system/cpu/cpu1/cpufreq/scaling_governor:schedutil\n")
    cores = cores_from_files("cpu0\ncpu1\ncpufreq\ncpuidle\nonline\n", files)
    assert cores == [CpuCore(0, 1704000, None), CpuCore(1, None, "schedutil")]
    stderr, kb = split_time_output("warning: x\nReal time (s): 1.5\nSystem time (s): 0.1\nUser time (s): 1.2\n"
                                   "Max RSS (KiB): 51234\nMajor faults: 0\nMinor faults: 12\n")
    assert kb == 51234 and stderr == "warning: x\n"
    assert split_time_output("no report") == ("no report", 0)


def test_device_states_get_their_hints():
    with pytest.raises(DeviceError, match="'A' is unauthorized.*accept the USB debugging prompt"):
        choose_device([AttachedDevice("A", "unauthorized")], None)
    with pytest.raises(DeviceError, match="'A' is offline.*reconnect"):
        choose_device([AttachedDevice("A", "offline")], "A")


# -- the device through the real adb client and the emulated phone ------------------------------

def test_detects_the_phone(phone, runners):
    d = device(runners)
    assert d.available() and d.name == f"adb:{phone.serial}"
    info = d.info()
    assert info["model"] == "Pixel 8" and info["soc"] == "Google Tensor G3" and info["abi"] == "arm64-v8a"
    assert info["android"] == "14" and info["cores"] == 9 and info["big_cores"] == [4, 5, 6, 7, 8]
    assert info["max_freq_khz"]["8"] == 2910000
    assert all(s.startswith("shell,v2,") for s in phone.services)         # the client chose shell protocol v2


def test_a_network_serial_is_attached_with_adb_connect(phones, runners):
    emulated = phones.add(connect=False)
    assert "no Android device attached" in device(runners).availability().reason
    d = device(runners, serial=emulated.serial)
    assert d.available() and d.info()["model"] == "Pixel 8"
    assert emulated.serial in phones.adb("devices").stdout
    emulated.unplug()
    with pytest.raises(DeviceError, match=r"cannot connect to Android device '127\.0\.0\.1:\d+'"):
        device(runners, serial="127.0.0.1:9").require()


def test_measures_a_case_pinned_to_the_big_cores(phone, runners, model):
    sandbox = phone.sandbox
    with device(runners) as d:
        m = d.measure(job(model, threads=2))
        pushed = sorted(p.name for p in (sandbox.root / "data/local/tmp/mobexport").iterdir())
        assert pushed == ["onnxruntime_perf_test", "result.txt"]                 # the artifact removed after the case
    assert not (sandbox.root / "data/local/tmp/mobexport").exists()            # close() cleans up
    assert sandbox.taskset_masks == ["1f0", "1f0"]                             # probe + measured run
    assert QUICK.min_iters <= len(m.samples_s) <= QUICK.max_iters
    assert m.warmup >= QUICK.min_warmup and all(0 < s < 1 for s in m.samples_s)
    assert m.init_s > 0 and m.peak_memory_bytes > 10 * 2**20                   # the runner's Max RSS from time -v
    c = m.conditions
    assert c["affinity"] == [4, 5, 6, 7, 8] and c["taskset_mask"] == "1f0"
    assert c["governor"] == {str(i): "sched_pixel" for i in range(4, 9)}
    assert c["temperature_c_start"] == 35.0 and c["cooldown_s"] == 0
    assert c["peak_memory"].startswith("runner process VmHWM")
    assert m.tool_versions["onnxruntime_perf_test"].startswith("sha256:")
    assert m.tool_versions["adb"].startswith("Android Debug Bridge version")
    runs = [cmd for cmd in sandbox.commands if "taskset" in cmd]
    assert len(runs) == 2 and all("taskset 1f0 time -v ./onnxruntime_perf_test -e cpu -m times" in cmd
                                  and "-x 2" in cmd for cmd in runs)
    assert phone.services.count("sync:") == 2                                  # runner + artifact pushed


def test_works_with_a_phone_without_shell_protocol_v2(phones, runners):
    """Old adbd (no shell_v2): the client falls back to 'shell:', statuses still come from the echoed marker."""
    emulated = phones.add(features=("cmd",))
    with device(runners) as d:
        assert d.connect().shell("false").returncode == 1 and d.connect().shell("true").returncode == 0
        assert d.info()["big_cores"] == [4, 5, 6, 7, 8]
        assert d.temperatures()["BIG"] == 35.0
    assert any(s.startswith("shell:") for s in emulated.services)
    assert not any(s.startswith("shell,v2") for s in emulated.services)


def test_waits_for_the_phone_to_cool_down(phones, runners, model):
    phones.add(PhoneSpec.from_fixture(thermal_trace={"thermal_zone0": [51000, 47000, 43500, 39000]}))
    sleeps = Sleeps()
    with device(runners, sleep=sleeps, cooling=CoolingPolicy(threshold_c=42, poll_s=5, max_wait_s=60)) as d:
        m = d.measure(job(model))
    assert sleeps == [5, 5, 5]
    assert m.conditions["cooldown_s"] == 15 and m.conditions["temperature_c_start"] == 39.0
    assert not m.conditions["cooldown_gave_up"]


def test_gives_up_waiting_for_a_hot_phone_and_says_so(phones, runners, model):
    phones.add(PhoneSpec.from_fixture(thermal_trace={"thermal_zone0": [60000]}))
    sleeps = Sleeps()
    with device(runners, sleep=sleeps, cooling=CoolingPolicy(threshold_c=42, poll_s=4, max_wait_s=10)) as d:
        m = d.measure(job(model))
    assert sleeps == [4, 4, 2]
    assert m.conditions["cooldown_gave_up"] and m.conditions["temperature_c_start"] == 60.0


def test_a_crashing_runner_fails_the_case(phone, runners, model, monkeypatch):
    monkeypatch.setenv("FAKE_RUNNER_EXIT", "139")
    with device(runners) as d:
        with pytest.raises(CaseFailed, match="onnxruntime_perf_test exited with status 139: Segmentation fault"):
            d.measure(job(model))
    assert not (phone.sandbox.root / "data/local/tmp/mobexport").exists()      # still cleaned up


def test_disconnect_mid_run_is_a_clear_error(phones, runners, model):
    """The phone hangs up when the 3rd runner starts: adb exits 0 with no output, the harness sees the loss."""
    emulated = phones.add(PhoneSpec.from_fixture(disconnect_on_run=3))   # case 1: runs 1, 2; case 2 dies in its probe
    with device(runners, reconnect_wait_s=1.0) as d:
        d.measure(job(model))
        with pytest.raises(DeviceDisconnectedError, match=f"Android device '{emulated.serial}' disconnected") as info:
            d.measure(job(model))
    assert "finished cases are kept" in info.value.one_line()


def test_a_phone_that_drops_and_comes_back_fails_only_that_case(phones, runners, model):
    emulated = phones.add(PhoneSpec.from_fixture(disconnect_on_run=3, replug_after_s=0.5))
    with device(runners, reconnect_wait_s=20) as d:
        first = d.measure(job(model))
        with pytest.raises(CaseFailed, match="the phone disconnected during this case and came back"):
            d.measure(job(model))
        third = d.measure(job(model))                     # the sweep goes on: the runner is pushed again
    assert first.samples_s and third.samples_s
    assert emulated.services.count("sync:") == 5           # runner + artifact, artifact, runner + artifact


def test_several_devices_need_a_serial(phones, runners):
    _, second = phones.add(), phones.add()
    with pytest.raises(DeviceError, match=r"2 Android devices attached \(pick one with --device adb:SERIAL"):
        device(runners).require()
    assert device(runners, serial=second.serial).info()["model"] == "Pixel 8"


def test_unauthorized_phone(phones, runners):
    locked = phones.add(PhoneSpec.from_fixture(locked=True), connect=False)
    # adb connect exits 0 and says 'failed to authenticate'; the listing then has the phone as unauthorized.
    with pytest.raises(DeviceError, match=f"'{locked.serial}' is unauthorized.*accept the USB debugging prompt"):
        device(runners, serial=locked.serial).require()
    with pytest.raises(DeviceError, match="is unauthorized.*accept the USB debugging prompt"):
        device(runners).require()


def test_adb_missing(monkeypatch, tmp_path, runners):
    monkeypatch.setenv("PATH", str(tmp_path))
    state = device(runners).availability()
    assert not state.ok and "adb not found on PATH" in state.reason
    with pytest.raises(DeviceError, match="--adb '.*nowhere' does not exist"):
        device(runners, adb=tmp_path / "nowhere").require()


def test_explicit_adb_path_without_path_lookup(phone, runners, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    d = device(runners, adb=ADB)
    assert d.available() and d.info()["model"] == "Pixel 8"


def test_runner_missing_wrong_abi_and_kind_mismatch(phone, tmp_path, runners):
    with pytest.raises(DeviceError, match="no ONNX Runtime onnxruntime_perf_test binary.*--ort-perf-test"):
        device({}).check_kind("onnx")
    wrong = fake_elf(tmp_path / "x86" / "onnxruntime_perf_test", 62)
    with pytest.raises(DeviceError, match="built for x86_64, but the device's ABI is arm64-v8a"):
        device({"onnx": wrong}).check_kind("onnx")
    with pytest.raises(DeviceError, match="coreml artifacts cannot run on device 'adb.*--device macos"):
        device(runners).check_kind("coreml")


def test_runner_paths_from_the_environment(phone, runners, monkeypatch):
    monkeypatch.setenv("MOBEXPORT_ORT_PERF_TEST", str(runners["onnx"]))
    device({}).check_kind("onnx")


def test_the_emulated_phone_keeps_to_its_sandbox(phone):
    from mobexport.devices.adb_client import Adb

    adb = Adb(ADB, phone.serial)
    result = adb.shell("cat /etc/passwd")
    assert result.returncode == 1 and "Permission denied" in result.stderr
    result = adb.shell("cat /data/local/tmp/../../../etc/passwd")
    assert result.returncode == 1 and "Permission denied" in result.stderr
    assert adb.shell("echo hi > /data/local/tmp/x").returncode == 2                # no redirections
    assert adb.shell("id").returncode == 127                                       # not in the command table
    assert not (phone.sandbox.root / "data/local/tmp/x").exists()


@pytest.mark.slow
def test_executor_runner_runs_a_real_program(phone, runners, tmp_path):
    """ExecuTorch end to end on the emulated phone (the stand-in imports ExecuTorch: slow)."""
    import torch
    from executorch.exir import to_edge

    module = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()
    program = to_edge(torch.export.export(module, (torch.randn(1, 3, 32, 32),))).to_executorch()
    pte = tmp_path / "model.pte"
    pte.write_bytes(program.buffer)
    with device(runners) as d:
        m = d.measure(CaseJob(kind="executorch", model="tiny", resolution=32, artifact_path=pte, policy=QUICK))
    assert len(m.samples_s) >= QUICK.min_iters and m.init_s > 0 and m.peak_memory_bytes > 0
    assert phone.sandbox.taskset_masks == ["1f0", "1f0"]


def test_threads_beyond_the_big_cores_use_every_core(phone, runners, model):
    with device(runners) as d:
        assert d.cores_for(5) == [4, 5, 6, 7, 8] and d.cores_for(0) == [4, 5, 6, 7, 8]
        every = d.measure(job(model, threads=9))
    assert every.conditions["taskset_mask"] == "1ff" and every.conditions["affinity"] == list(range(9))
    runs = [cmd for cmd in phone.sandbox.commands if "time -v" in cmd]
    assert all("taskset 1ff " in cmd and "-x 9" in cmd for cmd in runs)


def test_push_and_pull_use_the_sync_service_with_stat_v2(phone, tmp_path):
    from mobexport.devices.adb_client import Adb

    adb = Adb(ADB, phone.serial)
    local = tmp_path / "blob.bin"
    local.write_bytes(bytes(range(256)) * 1000)                       # several DATA chunks
    adb.push(local, "/data/local/tmp/blob.bin")
    adb.pull("/data/local/tmp/blob.bin", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == local.read_bytes()
    assert {"STA2", "SEND", "RECV"} <= set(phone.sandbox.sync_requests)
    with pytest.raises(DeviceError, match="failed to stat remote object '/data/local/tmp/nope'"):
        adb.pull("/data/local/tmp/nope", tmp_path / "nope")         # the client's error is on stdout
    with pytest.raises(DeviceError, match="remote couldn't create file"):
        adb.push(local, "/data/local/tmp/no/such/dir/blob.bin")
