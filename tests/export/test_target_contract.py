"""The target contract: the same checks over every registered target.

available() agrees with what is importable; the options dataclass's defaults
round-trip through the command line's argument group; quantizers are
declared per mode; ``lower`` (and ``finish``) on a tiny model returns a
:class:`Lowered` whose artifact kind the runtime registry opens; and that
runner's logits match PyTorch's within the target's tolerance. A target whose
tool is missing here is skipped with the reason.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import numpy as np
import pytest
import torch

from mobexport.config import ExportConfig
from mobexport.devices import runtimes
from mobexport.export import parity
from mobexport.export.targets import get_target, option_classes, options_class, quantizers_of, target_names
from mobexport.export.targets.base import Lowered
from mobexport.export.targets.options import add_arguments, default_options, options_from_args
from mobexport.export.trace import TracedProgram, example_input

RESOLUTION = 32
CLASSES = 10
# A zoo name for the spec facts a target reads (mean/std, its name in metadata); the network is the tiny one below.
MODEL = "mobilenet_v3_small_100"


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.head = torch.nn.Linear(8, CLASSES)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean((2, 3)))


def tiny_traced() -> tuple[torch.nn.Module, TracedProgram]:
    model = Tiny().eval()
    program = torch.export.export(model, (example_input(RESOLUTION),), strict=False)
    return model, TracedProgram(program, RESOLUTION, False, RESOLUTION, RESOLUTION, 1)


def config_for(name: str, out_dir) -> ExportConfig:
    options = {"build_engine": False} if name == "tensorrt" and not engine_builds_here() else {}
    return ExportConfig(model=MODEL, target=name, resolution=RESOLUTION, num_classes=CLASSES, dynamic=False,
                        out_dir=out_dir, target_options={**default_options(option_classes()), **options})


def engine_builds_here() -> bool:
    import importlib.util

    from mobexport.devices.runtimes.tensorrt import nvidia_gpu

    return importlib.util.find_spec("tensorrt") is not None and nvidia_gpu()[0]


@pytest.mark.parametrize("name", target_names())
def test_available_agrees_with_what_is_importable(name):
    import importlib.util

    target = get_target(name)
    assert target.name == name
    importable = all(importlib.util.find_spec(module) is not None for module, _ in target.requires)
    assert target.available() == importable
    state, detail = target.status_here()
    assert state in ("ready", "partial", "missing") and detail
    assert (state == "missing") == (not importable)


@pytest.mark.parametrize("name", target_names())
def test_options_defaults_round_trip_through_the_command_line(name):
    cls = options_class(name)
    assert get_target(name).options_class is cls
    parser = argparse.ArgumentParser()
    add_arguments(parser.add_argument_group("target options"), option_classes())
    from_cli = options_from_args(parser.parse_args([]), option_classes())
    assert from_cli == default_options(option_classes())
    assert cls.from_dict(from_cli) == cls()
    # Each option spelled on the command line with its default's spelling gives the default back.
    for field in dataclasses.fields(cls):
        flag = field.metadata["cli"]
        if field.default is None or flag.kind == "switch":
            continue
        spelled = ("yes" if field.default else "no") if flag.kind == "yes_no" else str(field.default)
        again = options_from_args(parser.parse_args([flag.flag, spelled]), option_classes())
        assert cls.from_dict(again) == cls(), flag.flag


@pytest.mark.parametrize("name", target_names())
def test_quantizers_are_declared_by_mode_with_a_stage(name):
    table = quantizers_of(name)
    assert get_target(name).quantizers is table
    for mode, quantizer in table.items():
        assert quantizer.mode == mode and quantizer.stage in ("program", "artifact", "options") and quantizer.how


@pytest.mark.parametrize("name", target_names())
def test_lower_open_and_parity_on_a_tiny_model(name, tmp_path):
    target = get_target(name)
    gap = target.missing()
    if gap is not None:
        pytest.skip(f"{name}: {gap[1]} is not installed")
    config = config_for(name, tmp_path)
    target.check_config(config)
    model, traced = tiny_traced()
    prepared = target.prepare(traced, config)
    lowered = target.finish(target.lower(prepared, config, tmp_path), config, tmp_path)

    assert isinstance(lowered, Lowered) and lowered.path.exists()
    assert lowered.kind in runtimes.RUNTIMES
    # The file's suffix names the same runtime as the recorded kind (manifests without a kind are read that way).
    assert runtimes.kind_of(lowered.path) == lowered.kind
    # lower() is stateless: a second target object knows nothing of the first one's export.
    assert vars(get_target(name)) == {} and vars(target) == {}

    runnable, why_not = lowered.can_run_here()
    if not runnable:
        pytest.skip(f"{name}: parity is not run here ({why_not})")
    manifest = {"artifact": {"file": lowered.path.name, "kind": lowered.kind}, "target_details": lowered.details}
    with runtimes.open_runner(lowered.path, manifest, device="cpu") as runner:
        x = parity.random_inputs(RESOLUTION, 2)
        got = np.concatenate([runner.infer(x[i:i + 1]) for i in range(len(x))])
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    tolerance = parity.TOLERANCES[target.precision_for(config)]
    report = parity.compare(want, got, RESOLUTION, tolerance)
    assert report.passed, report.describe()


def test_the_registry_opens_by_recorded_kind_before_suffix(tmp_path):
    path = tmp_path / "model.onnx"
    assert runtimes.kind_of(path) == runtimes.ONNX
    assert runtimes.kind_of(path, {"artifact": {"kind": runtimes.TENSORRT}}) == runtimes.TENSORRT
    from mobexport.errors import DeviceError

    with pytest.raises(DeviceError, match="no runtime opens 'model.bin'"):
        runtimes.kind_of(tmp_path / "model.bin")
    with pytest.raises(DeviceError, match="unknown artifact kind 'nope'"):
        runtimes.open_runner(path, kind="nope")


def test_devices_import_nothing_from_export():
    """The one-way flow: export uses devices' runtimes, never the other way round."""
    import pathlib
    import re

    devices = pathlib.Path(runtimes.__file__).resolve().parents[1]
    offenders = [str(p.relative_to(devices)) for p in devices.rglob("*.py")
                 if re.search(r"^\s*(from|import)\s+mobexport\.export\b", p.read_text(), re.M)]
    assert offenders == []
    code = ("import sys, mobexport.devices.case_worker, mobexport.devices.runtimes.coreml, "
            "mobexport.devices.runtimes.coreml_mil; "
            "print([m for m in sys.modules if m.startswith('mobexport.export')])")
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_the_sweep_exports_with_the_command_lines_defaults():
    """``bench`` once copied the CLI's defaults by hand (and missed --int8-activations)."""
    from mobexport.benchmarks.sweep.artifacts import DEFAULT_TARGET_OPTIONS

    assert DEFAULT_TARGET_OPTIONS == default_options(option_classes())
    assert set(DEFAULT_TARGET_OPTIONS) == {name for cls in option_classes() for name in cls.defaults()}
