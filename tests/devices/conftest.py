"""Fixtures for device tests: an emulated phone behind the real ``adb`` client, tiny ONNX models.

``phone`` starts the adbd emulator of ``tests/devices/adbd`` on 127.0.0.1,
a private adb server (``ANDROID_ADB_SERVER_PORT`` set to a free port, HOME a
temporary directory so no real key or device list is touched) and attaches
the phone with ``adb connect``; at teardown the server is killed with
``adb kill-server`` and the emulator stopped.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from .adbd import AdbdEmulator, PhoneSpec

ADB = shutil.which("adb")
needs_adb = pytest.mark.skipif(ADB is None, reason="the adb client is not installed (apt-get install adb)")
ARM64 = 183


def fake_elf(path: Path, machine: int = ARM64) -> Path:
    """A file with a 64-bit little-endian ELF header for ``machine`` (183: aarch64), executable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = bytearray(64)
    header[:4] = b"\x7fELF"
    header[4], header[5] = 2, 1
    header[18:20] = machine.to_bytes(2, "little")
    path.write_bytes(bytes(header))
    path.chmod(0o755)
    return path


def runner_binaries(directory: Path, machine: int = ARM64) -> dict[str, Path]:
    """Runner "builds" for the phone's ABI: the emulated phone runs its host-side stand-ins in their place."""
    return {"executorch": fake_elf(directory / "executor_runner", machine),
            "onnx": fake_elf(directory / "onnxruntime_perf_test", machine),
            "litert": fake_elf(directory / "benchmark_model", machine)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Phones:
    """Emulated phones and the private adb server that sees them."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.emulators: list[AdbdEmulator] = []

    def adb(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([ADB, *args], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)

    def add(self, spec: PhoneSpec | None = None, connect: bool = True, **emulator_options) -> AdbdEmulator:
        emulator = AdbdEmulator(self.tmp_path / f"phone{len(self.emulators)}", spec, **emulator_options).start()
        self.emulators.append(emulator)
        if connect:
            out = self.adb("connect", emulator.serial)
            assert f"connected to {emulator.serial}" in out.stdout, out
        return emulator

    def close(self) -> None:
        self.adb("kill-server")
        for emulator in self.emulators:
            emulator.stop()


@pytest.fixture
def phones(tmp_path, monkeypatch):
    """No phone yet: a private adb server (started by the first adb command) and the runner env cleared."""
    if ADB is None:
        pytest.skip("the adb client is not installed (apt-get install adb)")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(_free_port()))
    for var in ("ANDROID_SERIAL", "MOBEXPORT_EXECUTOR_RUNNER", "MOBEXPORT_ORT_PERF_TEST", "MOBEXPORT_BENCHMARK_MODEL"):
        monkeypatch.delenv(var, raising=False)
    world = Phones(tmp_path)
    yield world
    world.close()


@pytest.fixture
def phone(phones) -> AdbdEmulator:
    """One emulated Pixel 8 attached over TCP."""
    return phones.add()


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
