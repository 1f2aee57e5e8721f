"""TensorRT target: the GPU-less refusal, --build-engine no, the trtexec line, and the engine builder."""

from __future__ import annotations

import importlib.util
import shlex
import sys
import types

import numpy as np
import pytest

from mobexport.config import ExportConfig
from mobexport.devices.runtimes import tensorrt as tensorrt_runner
from mobexport.errors import DeviceError, MissingDependencyError
from mobexport.export.targets.tensorrt import target as tensorrt_target
from mobexport.export.pipeline import export_model
from mobexport.export.targets import get_target
from mobexport.export.trace import TracedProgram

SMALL = "mobilenet_v3_small_100"


def config(out_dir, build_engine=True, precision=None, dynamic=None, resolution=96):
    return ExportConfig(model=SMALL, target="tensorrt", resolution=resolution, out_dir=out_dir, dynamic=dynamic,
                        parity_samples=2, target_options={"precision": precision, "build_engine": build_engine})


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(tensorrt_target, "nvidia_gpu", lambda: (False, "nvidia-smi not found on PATH"))


@pytest.fixture
def fake_gpu(monkeypatch):
    monkeypatch.setattr(tensorrt_target, "nvidia_gpu", lambda: (True, "GPU 0: Fake GPU"))


def traced(dynamic: bool, resolution=224) -> TracedProgram:
    return TracedProgram(program=None, resolution=resolution, dynamic=dynamic,
                         min_resolution=96 if dynamic else resolution,
                         max_resolution=1024 if dynamic else resolution, stride=32)


def test_engine_without_gpu_is_refused_before_any_work(tmp_path, no_gpu):
    with pytest.raises(DeviceError) as info:
        export_model(config(tmp_path))
    message = str(info.value)
    assert "TensorRT needs an NVIDIA GPU" in message and "--build-engine no" in message
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_cli_without_gpu_exits_2_in_one_line(capsys, tmp_path, no_gpu):
    from mobexport.cli import main

    status = main(["--model", SMALL, "--target", "tensorrt", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1 and "Traceback" not in err
    assert "NVIDIA GPU" in lines[0] and "--build-engine no" in lines[0]


def test_gpu_without_tensorrt_names_the_package(tmp_path, fake_gpu, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorrt" else real(name, *a))
    with pytest.raises(MissingDependencyError, match="pip install tensorrt"):
        export_model(config(tmp_path))


def test_missing_onnx_extra_is_one_clear_error(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    with pytest.raises(MissingDependencyError, match=r'mobexport\[tensorrt\]'):
        export_model(config(tmp_path, build_engine=False))


def test_build_engine_no_writes_onnx_trtexec_line_and_onnx_parity(tmp_path, no_gpu):
    artifact = export_model(config(tmp_path, build_engine=False))
    m = artifact.manifest
    d = m.target_details
    assert artifact.path.name == "model.onnx" and artifact.path.is_file()
    assert d["engine_built"] is False and d["engine_precision"] == "fp16"
    args = shlex.split(d["trtexec"])
    assert args[:3] == ["trtexec", "--onnx=model.onnx", "--saveEngine=model.engine"]
    assert "--fp16" in args and not [a for a in args if "Shapes=" in a or a.startswith("--shapes")]
    assert d["profile"] == {"input": "input", "dynamic": False, "shape": [1, 3, 96, 96]}
    # The ONNX file is fp32: it is judged with fp32 tolerances, under ONNX Runtime, here.
    assert m.tolerance["name"] == "fp32" and m.parity and all(p["passed"] for p in m.parity)
    assert any("--build-engine no" in note for note in m.notes)
    # The TensorRT-ready file loads back through the target for benchmarking on this CPU.
    with get_target("tensorrt").load(artifact.path, m.__dict__) as runner:
        assert runner.infer(np.zeros((1, 3, 96, 96), np.float32)).shape == (1, 1000)


def test_trtexec_line_for_a_dynamic_fp32_engine():
    shapes = tensorrt_target.profile_shapes(traced(dynamic=True))
    assert shapes == {"input": "input", "dynamic": True, "min": [1, 3, 96, 96], "opt": [1, 3, 224, 224],
                      "max": [1, 3, 1024, 1024]}
    args = shlex.split(tensorrt_target.trtexec_command("model.onnx", "model.engine", "fp32", shapes))
    assert "--fp16" not in args
    assert {"--minShapes=input:1x3x96x96", "--optShapes=input:1x3x224x224",
            "--maxShapes=input:1x3x1024x1024"} <= set(args)
    assert "--saveEngine=model.engine" in args


class _Recorder:
    """A stand-in for the ``tensorrt`` module that records the builder calls made on it."""

    def __init__(self, parse_ok=True, build_ok=True):
        self.calls: list[tuple] = []
        rec = self

        class Logger:
            WARNING = "warning"

            def __init__(self, level):
                rec.calls.append(("Logger", level))

        class Network:
            num_layers = 42

        class Parser:
            num_errors = 0 if parse_ok else 1

            def __init__(self, network, logger):
                rec.calls.append(("OnnxParser",))

            def parse_from_file(self, path):
                rec.calls.append(("parse_from_file", path))
                return parse_ok

            def get_error(self, i):
                return "unsupported op Foo"

        class Profile:
            def set_shape(self, name, low, opt, high):
                rec.calls.append(("set_shape", name, low, opt, high))

        class BuilderConfig:
            def set_flag(self, flag):
                rec.calls.append(("set_flag", flag))

            def set_memory_pool_limit(self, pool, size):
                rec.calls.append(("set_memory_pool_limit", pool, size))

            def add_optimization_profile(self, profile):
                rec.calls.append(("add_optimization_profile",))

        class Builder:
            def __init__(self, logger):
                pass

            def create_network(self, flags):
                rec.calls.append(("create_network", flags))
                return Network()

            def create_builder_config(self):
                return BuilderConfig()

            def create_optimization_profile(self):
                return Profile()

            def build_serialized_network(self, network, config):
                rec.calls.append(("build_serialized_network",))
                return b"engine-bytes" if build_ok else None

        self.module = types.SimpleNamespace(
            __version__="10.99", Logger=Logger, Builder=Builder, OnnxParser=Parser,
            BuilderFlag=types.SimpleNamespace(FP16="FP16"), MemoryPoolType=types.SimpleNamespace(WORKSPACE="WS"))


def test_engine_builder_sets_fp16_and_the_profile(tmp_path, monkeypatch, fake_gpu):
    rec = _Recorder()
    monkeypatch.setitem(sys.modules, "tensorrt", rec.module)
    monkeypatch.setattr(tensorrt_runner, "nvidia_gpu", lambda: (True, "GPU 0: Fake GPU"))
    shapes = tensorrt_target.profile_shapes(traced(dynamic=True))
    facts = tensorrt_target.build_engine(tmp_path / "model.onnx", tmp_path / "model.engine", "fp16", shapes)
    assert ("create_network", 0) in rec.calls and ("set_flag", "FP16") in rec.calls
    assert ("set_shape", "input", (1, 3, 96, 96), (1, 3, 224, 224), (1, 3, 1024, 1024)) in rec.calls
    assert rec.calls[-1] == ("build_serialized_network",)
    assert (tmp_path / "model.engine").read_bytes() == b"engine-bytes"
    assert facts["tensorrt_version"] == "10.99" and facts["network_layers"] == 42

    rec = _Recorder()
    monkeypatch.setitem(sys.modules, "tensorrt", rec.module)
    tensorrt_target.build_engine(tmp_path / "model.onnx", tmp_path / "e2", "fp32", tensorrt_target.profile_shapes(traced(False)))
    assert not [c for c in rec.calls if c[0] in ("set_flag", "set_shape")]


@pytest.mark.parametrize("parse_ok, build_ok, message", [
    (False, True, "could not parse the ONNX file: unsupported op Foo"),
    (True, False, "could not build an engine"),
])
def test_engine_builder_failures_are_export_errors(tmp_path, monkeypatch, parse_ok, build_ok, message):
    from mobexport.errors import ExportError

    monkeypatch.setitem(sys.modules, "tensorrt", _Recorder(parse_ok, build_ok).module)
    with pytest.raises(ExportError, match=message):
        tensorrt_target.build_engine(tmp_path / "m.onnx", tmp_path / "m.engine", "fp16",
                                     tensorrt_target.profile_shapes(traced(False)))
    assert not (tmp_path / "m.engine").exists()


def test_engine_runner_without_cuda_says_so(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this host has CUDA: the refusal is for hosts without it")
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"not an engine")
    with pytest.raises(DeviceError, match="NVIDIA GPU"):
        with get_target("tensorrt").load(engine, device="cuda") as runner:
            runner.infer(np.zeros((1, 3, 96, 96), np.float32))


def test_real_engine_build_and_parity(tmp_path):
    present, why = tensorrt_runner.nvidia_gpu()
    if not present or importlib.util.find_spec("tensorrt") is None:
        pytest.skip(f"needs an NVIDIA GPU and the tensorrt package ({why if not present else 'tensorrt missing'})")
    artifact = export_model(config(tmp_path))
    m = artifact.manifest
    assert artifact.path.suffix == ".engine" and m.target_details["engine_built"] is True
    assert m.tolerance["name"] == "fp16" and all(p["passed"] for p in m.parity)
    from mobexport.errors import ResolutionError

    with get_target("tensorrt").load(artifact.path, m.__dict__, device="cuda") as runner:
        with pytest.raises(ResolutionError):
            runner.infer(np.zeros((1, 3, 128, 128), np.float32))
