"""ExecuTorch target: lowering, delegation coverage, memory plan, the runtime runner, bad input."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from torch.export import Dim

from mobexport.config import ExportConfig
from mobexport.errors import MissingDependencyError, ResolutionError, TargetOptionError
from mobexport.export.targets.executorch import target as executorch_target
from mobexport.export.targets.executorch.delegation import delegation_coverage
from mobexport.export.targets.executorch.target import ExecuTorchTarget
from mobexport.export.pipeline import export_model
from mobexport.export.targets import get_target
from mobexport.export.trace import TracedProgram
from mobexport.models import create_model

pytest.importorskip("executorch", reason="the executorch extra is not installed")

SMALL = "mobilenet_v3_small_100"
HYBRID = "mobile_former_26m"


def export(out_dir, model=SMALL, resolution=96, **options):
    dynamic = options.pop("dynamic", None)
    config = ExportConfig(model=model, target="executorch", resolution=resolution, out_dir=out_dir,
                          dynamic=dynamic, parity_samples=2,
                          target_options={"backend": "xnnpack", "precision": None, **options})
    return export_model(config)


@pytest.fixture(scope="module")
def small_artifact(tmp_path_factory):
    return export(tmp_path_factory.mktemp("et"))


def test_xnnpack_program_delegates_all_macs_and_matches_pytorch(small_artifact):
    m = small_artifact.manifest
    d = m.target_details
    assert small_artifact.path.name == "model.pte" and small_artifact.path.stat().st_size == m.artifact["size_bytes"]
    assert d["backend"] == "xnnpack" and d["delegate_subgraphs"] >= 1
    # Every conv/linear MAC the graph has is accounted for, and all of them run in XNNPACK.
    assert d["macs_delegated"] + d["macs_portable"] == pytest.approx(m.macs["total_macs"], rel=0.01)
    assert d["macs_portable"] == 0 and d["mac_coverage"] == 1.0
    assert d["ops_portable"] == sum(d["portable_ops"].values())
    # What is left outside XNNPACK only touches constants (dtype copies of hardsigmoid's scalars).
    assert d["portable_ops_on_activations"] == {}
    assert not [note for note in small_artifact.manifest.notes if "portable kernels" in note]
    assert d["ops_delegated"] == sum(d["delegated_ops"].values()) > 50
    assert "aten.convolution.default" in d["delegated_ops"]
    # The plan holds at least the (planned) input and output tensors.
    assert d["planned_memory_bytes"] >= 3 * 96 * 96 * 4 + 1000 * 4
    assert d["inputs"] == [{"name": d["inputs"][0]["name"], "shape": [1, 3, 96, 96]}]
    assert m.resolution["dynamic"] is False
    assert m.tolerance["name"] == "fp32"
    assert [p["resolution"] for p in m.parity] == [96] and m.parity[0]["passed"]
    assert m.parity[0]["max_abs_error"] < 1e-4


def test_runner_refuses_another_size_of_a_static_program(small_artifact):
    target = get_target("executorch")
    x = np.random.default_rng(0).standard_normal((1, 3, 96, 96)).astype(np.float32)
    reference = create_model(SMALL, resolution=96).eval()
    for manifest in (small_artifact.manifest.__dict__, None):  # from the manifest, or the program's own constants
        with target.load(small_artifact.path, manifest) as runner:
            np.testing.assert_allclose(runner.infer(x), reference(torch.from_numpy(x)).detach().numpy(), atol=1e-4)
            with pytest.raises(ResolutionError, match=r"accepts 96x96 only .*got 128x128"):
                runner.infer(np.zeros((1, 3, 128, 128), np.float32))
            with pytest.raises(ResolutionError, match="batch 1"):
                runner.infer(np.zeros((2, 3, 96, 96), np.float32))


def test_coverage_counts_ops_left_on_portable_kernels():
    class ConvThenCumsum(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)

        def forward(self, x):
            return torch.cumsum(self.conv(x), dim=1)

    program = torch.export.export(ConvThenCumsum().eval(), (torch.randn(1, 3, 16, 16),))
    _, coverage, _ = executorch_target.lower_program(program, "xnnpack")
    assert coverage.delegate_subgraphs == 1
    assert coverage.portable_ops == coverage.portable_ops_on_activations == {"aten.cumsum.default": 1}
    assert coverage.portable_reasons == {"aten.cumsum.default": "the delegate has no kernel for this op"}
    assert coverage.macs_delegated == 8 * 16 * 16 * 3 * 3 * 3 and coverage.macs_portable == 0
    _, portable, _ = executorch_target.lower_program(program, "portable")
    assert portable.delegate_subgraphs == 0 and portable.ops_delegated == 0
    assert portable.macs_portable == coverage.macs_delegated and portable.mac_coverage == 0.0
    assert "aten.convolution.default" in portable.portable_ops


def test_coverage_records_why_xnnpack_refused_an_op():
    class ConvThenTokenMean(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)

        def forward(self, x):
            return self.conv(x).flatten(2).mean(-1)  # a rank-3 mean: XNNPACK takes only 4-D spatial means

    program = torch.export.export(ConvThenTokenMean().eval(), (torch.randn(1, 3, 16, 16),))
    _, coverage, _ = executorch_target.lower_program(program, "xnnpack")
    assert coverage.portable_ops_on_activations.get("aten.mean.dim") == 1
    assert "rank 3" in coverage.portable_reasons["aten.mean.dim"]


def test_coverage_of_an_undelegated_graph_module_is_all_portable():
    class Linear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 5)

        def forward(self, x):
            return self.fc(x)

    from executorch.exir import to_edge

    edge = to_edge(torch.export.export(Linear().eval(), (torch.randn(2, 4),)))
    coverage = delegation_coverage(edge.exported_program(), "none")
    assert coverage.delegate_subgraphs == 0
    assert coverage.macs_portable == 2 * 5 * 4  # addmm/linear: numel(out) * K


class TinyConvNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.fc = torch.nn.Linear(4, 5)

    def forward(self, x):
        return self.fc(self.conv(x).mean((2, 3), keepdim=True).flatten(1))


def tiny_traced(dynamic: bool) -> TracedProgram:
    x = torch.randn(1, 3, 64, 64)
    shapes = None
    if dynamic:
        h, w = Dim("h", min=1, max=4), Dim("w", min=1, max=4)
        shapes = {"x": {2: 32 * h, 3: 32 * w}}
    program = torch.export.export(TinyConvNet().eval(), (x,), dynamic_shapes=shapes)
    return TracedProgram(program, 64, dynamic, 32 if dynamic else 64, 128 if dynamic else 64, 32)


def test_dynamic_program_runs_every_size_of_its_range(tmp_path):
    config = ExportConfig(model=SMALL, target="executorch", target_options={"backend": "xnnpack"})
    lowered = ExecuTorchTarget().lower(tiny_traced(dynamic=True), config, tmp_path)
    assert lowered.traced is None and lowered.notes == []
    with ExecuTorchTarget().load(lowered.path) as runner:  # sizes from the program's constant methods
        assert (runner.accepted.min, runner.accepted.max, runner.accepted.stride) == (32, 128, 32)
        for size in (32, 96, 128):
            assert runner.infer(np.zeros((1, 3, size, size), np.float32)).shape == (1, 5)
        with pytest.raises(ResolutionError, match="32..128 step 32"):
            runner.infer(np.zeros((1, 3, 80, 80), np.float32))


def test_dynamic_lowering_failure_falls_back_to_static_with_a_note(tmp_path, monkeypatch):
    real = executorch_target.lower_program
    calls = []

    def refuse_dynamic(program, backend, constants=None, etrecord=False):
        calls.append(constants)
        if len(calls) == 1:
            raise RuntimeError("XNNPACK cannot take symbolic sizes here")
        return real(program, backend, constants, etrecord)

    monkeypatch.setattr(executorch_target, "lower_program", refuse_dynamic)
    config = ExportConfig(model=SMALL, target="executorch", target_options={"backend": "xnnpack"})
    lowered = ExecuTorchTarget().lower(tiny_traced(dynamic=True), config, tmp_path)
    assert lowered.traced is not None and lowered.traced.dynamic is False and lowered.traced.resolution == 64
    assert lowered.notes == ["lowered static 64: xnnpack could not take dynamic height/width "
                             "(XNNPACK cannot take symbolic sizes here)"]
    assert calls[1] == {"mobexport_min_resolution": 64, "mobexport_max_resolution": 64,
                        "mobexport_resolution_stride": 1}
    assert lowered.details["inputs"][0]["shape"] == [1, 3, 64, 64]


def test_portable_backend_runs_without_delegate(tmp_path):
    artifact = export(tmp_path, backend="portable")
    d = artifact.manifest.target_details
    assert d["backend"] == "portable" and d["delegate_subgraphs"] == 0 and d["mac_coverage"] == 0.0
    assert d["portable_ops"]["aten.convolution.default"] >= 50
    # Without XNNPACK every intermediate is in the plan: far more than the delegated program's I/O.
    assert d["planned_memory_bytes"] > 10 * (3 * 96 * 96 * 4)
    assert artifact.manifest.parity[0]["passed"]


def test_precision_fp16_is_refused(tmp_path):
    with pytest.raises(TargetOptionError, match="--precision fp16"):
        export(tmp_path, precision="fp16")
    assert not (tmp_path / SMALL).exists()


def test_missing_extra_is_one_clear_error(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "executorch" else real(name, *a))
    with pytest.raises(MissingDependencyError) as info:
        export(tmp_path)
    assert 'pip install "mobexport[executorch]"' in str(info.value)


def test_cli_missing_extra_exits_2_in_one_line(capsys, tmp_path, monkeypatch):
    from mobexport.cli import main
    from mobexport.export.targets.base import Target

    monkeypatch.setattr(Target, "missing", lambda self: ("executorch", "executorch"))
    status = main(["--model", SMALL, "--target", "executorch", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "executorch" in lines[0] and "Traceback" not in err


@pytest.mark.slow
def test_hybrid_model_lowers_with_parity(tmp_path):
    artifact = export(tmp_path, model=HYBRID, resolution=128)
    d = artifact.manifest.target_details
    assert d["delegate_subgraphs"] >= 1 and d["mac_coverage"] > 0.95
    assert artifact.manifest.parity[0]["passed"]


@pytest.mark.slow
def test_dynamic_program_takes_two_sizes_or_says_why_not(tmp_path):
    artifact = export(tmp_path, model=HYBRID, resolution=160, dynamic=True)
    m = artifact.manifest
    if m.resolution["dynamic"]:
        # The second point is 64 pixels from 160, the smaller one when the range takes it.
        second = 96 if m.resolution["min"] <= 96 else 224
        assert [p["resolution"] for p in m.parity] == [160, second]
        assert all(p["passed"] for p in m.parity)
    else:
        assert any("could not take dynamic height/width" in note for note in m.notes)


@pytest.mark.slow
@pytest.mark.parametrize("model", [
    "mobile_former_26m", "mobile_former_52m", "mobile_former_96m", "mobile_former_151m", "mobile_former_214m",
    "mobile_former_294m", "mobile_former_508m", "mobilenet_v3_small_075", "mobilenet_v3_small_100",
    "mobilenet_v3_large_075", "mobilenet_v3_large_100",
])
def test_every_mobile_former_and_mobilenet_v3_variant_exports(tmp_path, model):
    artifact = export(tmp_path, model=model, resolution=224)
    assert artifact.manifest.parity[0]["passed"]
    assert artifact.manifest.target_details["mac_coverage"] > 0.95
