"""Fixtures for device tests: a sandboxed fake phone behind the fake ``adb``, tiny ONNX models."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
FAKE_ADB = FIXTURES / "fake_adb"
FAKE_ORT_PERF_TEST = FIXTURES / "fake_onnxruntime_perf_test"
FAKE_EXECUTOR_RUNNER = FIXTURES / "fake_executor_runner"
FAKE_BENCHMARK_MODEL = FIXTURES / "fake_benchmark_model"
SERIAL = "FAKE0001"

PIXEL_PROPS = {
    "ro.product.model": "Pixel 8",
    "ro.product.manufacturer": "Google",
    "ro.soc.manufacturer": "Google",
    "ro.soc.model": "Tensor G3",
    "ro.board.platform": "zuma",
    "ro.product.cpu.abi": "arm64-v8a",
    "ro.build.version.release": "14",
    "ro.build.version.sdk": "34",
    "ro.build.fingerprint": "google/shiba/shiba:14/AP2A.240805.005/12025142:user/release-keys",
}
# Tensor G3: 4 little, 4 mid, 1 prime core (kHz).
PIXEL_FREQS = [1704000] * 4 + [2367000] * 4 + [2910000]


class FakePhones:
    """The sandbox the fake adb reads: devices, their files, and what adb was asked."""

    def __init__(self, home: Path):
        self.home = home
        (home / "devices").mkdir(parents=True)
        self._save({"devices": {}})

    def _load(self) -> dict:
        return json.loads((self.home / "state.json").read_text())

    def _save(self, state: dict) -> None:
        (self.home / "state.json").write_text(json.dumps(state, indent=1))

    def add(self, serial: str = SERIAL, state: str = "device", props: dict | None = None,
            freqs: list[int] | None = None, governor: str = "sched_pixel",
            temps: dict[str, tuple[str, int]] | None = None, **behaviour) -> Path:
        """A phone with its /sys tree; ``temps``: zone -> (type, millidegrees)."""
        root = self.home / "devices" / serial
        for index, khz in enumerate(PIXEL_FREQS if freqs is None else freqs):
            cpufreq = root / f"sys/devices/system/cpu/cpu{index}/cpufreq"
            cpufreq.mkdir(parents=True)
            (cpufreq / "cpuinfo_max_freq").write_text(f"{khz}\n")
            (cpufreq / "scaling_governor").write_text(f"{governor}\n")
        (root / "sys/devices/system/cpu/cpufreq").mkdir(parents=True, exist_ok=True)  # not a cpuN: ignored
        zones = temps if temps is not None else {"thermal_zone0": ("BIG", 35000), "thermal_zone1": ("battery", 30000),
                                                 "thermal_zone2": ("LITTLE", 33000)}
        for zone, (kind, milli) in zones.items():
            path = root / "sys/class/thermal" / zone
            path.mkdir(parents=True)
            (path / "type").write_text(f"{kind}\n")
            (path / "temp").write_text(f"{milli}\n")
        (root / "data/local/tmp").mkdir(parents=True)
        (root / "proc").mkdir()
        (root / "proc/cpuinfo").write_text("Processor\t: AArch64 Processor\nHardware\t: Tensor G3\n")
        data = self._load()
        data["devices"][serial] = {"state": state, "props": dict(PIXEL_PROPS if props is None else props), **behaviour}
        self._save(data)
        return root

    def update(self, serial: str = SERIAL, **keys) -> None:
        data = self._load()
        data["devices"][serial].update(keys)
        self._save(data)

    def root(self, serial: str = SERIAL) -> Path:
        return self.home / "devices" / serial

    def calls(self) -> list[list[str]]:
        path = self.home / "calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def shell_commands(self) -> list[str]:
        return [" ".join(c[c.index("shell") + 1:]) for c in self.calls() if "shell" in c]

    def taskset_masks(self) -> list[str]:
        path = self.home / "taskset.log"
        return path.read_text().split() if path.exists() else []


@pytest.fixture
def phones(tmp_path, monkeypatch) -> FakePhones:
    """An empty fake-adb world, with the fake adb first on PATH as ``adb``."""
    home = tmp_path / "adb-home"
    sandbox = FakePhones(home)
    bin_dir = tmp_path / "adb-bin"
    bin_dir.mkdir()
    (bin_dir / "adb").symlink_to(FAKE_ADB)
    monkeypatch.setenv("FAKE_ADB_HOME", str(home))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("ANDROID_SERIAL", raising=False)
    for var in ("MOBEXPORT_EXECUTOR_RUNNER", "MOBEXPORT_ORT_PERF_TEST"):
        monkeypatch.delenv(var, raising=False)
    return sandbox


@pytest.fixture
def phone(phones) -> FakePhones:
    """One attached Pixel-like phone."""
    phones.add()
    return phones


def tiny_onnx(path: Path, resolution: int = 32, classes: int = 10) -> Path:
    """Conv -> ReLU -> global average pool -> flatten -> Gemm: [1, 3, R, R] -> [1, classes]."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.standard_normal((16, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.standard_normal((classes, 16)).astype(np.float32), "fc"),
        numpy_helper.from_array(np.zeros(classes, np.float32), "fc_b"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fc", "fc_b"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, resolution, resolution])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
