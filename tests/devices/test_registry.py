"""Device names, and which devices say they are (un)available here and why."""

from __future__ import annotations

import shutil
import sys

import pytest

from mobexport.devices.android import AndroidDevice
from mobexport.devices.cuda import CudaDevice
from mobexport.devices.local import LocalDevice
from mobexport.devices.macos import MacDevice
from mobexport.devices.registry import DeviceOptions, get_device, survey
from mobexport.errors import DeviceError

from .adbd import PhoneSpec


def test_names_map_to_devices():
    assert isinstance(get_device("local"), LocalDevice)
    assert isinstance(get_device("cuda"), CudaDevice)
    assert get_device("adb:R5CT1234").requested_serial == "R5CT1234"
    assert isinstance(get_device("adb"), AndroidDevice)
    assert get_device("macos:cpu_and_gpu").name == "macos:CPU_AND_GPU"
    assert get_device("macos").name == "macos:ALL"


@pytest.mark.parametrize("spec", ["phone", "local:3", "gpu", "cuda:1", ""])
def test_unknown_device_names(spec):
    with pytest.raises(DeviceError, match=f"unknown device '{spec}'.*local, cuda, adb\\[:SERIAL\\]"):
        get_device(spec)


def test_bad_compute_units_and_misplaced_cpus():
    with pytest.raises(DeviceError, match="unknown Core ML compute units 'NPU'"):
        get_device("macos:NPU")
    with pytest.raises(DeviceError, match="--cpus applies to this host only"):
        get_device("adb", DeviceOptions(cpus=[4, 5]))


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this host has nvidia-smi")
def test_cuda_is_unavailable_without_a_gpu_and_says_why():
    state = CudaDevice().availability()
    assert not state.ok and "no NVIDIA GPU" in state.reason and "nvidia-smi" in state.reason
    with pytest.raises(DeviceError, match="device 'cuda' is not available: no NVIDIA GPU"):
        CudaDevice().require()


def test_cuda_refuses_kinds_it_cannot_run():
    with pytest.raises(DeviceError, match="executorch artifacts cannot run on device 'cuda'"):
        CudaDevice().check_kind("executorch")


@pytest.mark.skipif(sys.platform == "darwin", reason="checks the off-macOS answer")
def test_macos_is_unavailable_elsewhere_and_says_why():
    state = MacDevice().availability()
    assert not state.ok and "Core ML prediction needs macOS" in state.reason
    assert MacDevice("CPU_ONLY").runtime_device == "CPU_ONLY"


def test_coreml_prediction_on_a_mac():
    if sys.platform != "darwin":
        pytest.skip("Core ML prediction needs macOS; this host is not a Mac")
    assert MacDevice().available()


def test_survey_lists_every_kind(phones):
    name = f"adb:{phones.add().serial}"
    rows = {r.name: r for r in survey()}
    assert rows["local"].available and "cores" in rows["local"].detail
    assert rows[name].available and "Pixel 8" in rows[name].detail
    assert "Tensor G3" in rows[name].detail and "arm64-v8a" in rows[name].detail
    assert set(rows) == {"local", "cuda", name, "macos:ALL"}


def test_survey_explains_adb_problems(phones, monkeypatch, tmp_path):
    locked = phones.add(PhoneSpec.from_fixture(locked=True), connect=False)
    phones.adb("connect", locked.serial)
    rows = {r.name: r for r in survey()}
    name = f"adb:{locked.serial}"
    assert not rows[name].available and "accept the USB debugging prompt" in rows[name].detail
    monkeypatch.setenv("PATH", str(tmp_path))
    rows = {r.name: r for r in survey()}
    assert not rows["adb"].available and "adb not found on PATH" in rows["adb"].detail
