"""Which exported artifact a case reuses, and where sweep artifacts live."""

from __future__ import annotations

from pathlib import Path

from mobexport import __version__
from mobexport.benchmarks.sweep.artifacts import export_command, export_config, reusable, variant_dir
from mobexport.benchmarks.results.records import CaseKey
from mobexport.manifest import Manifest, sha256_tree

CASE = CaseKey(model="mobilenet_v3_small_100", target="onnx", resolution=160)


def fake_export(out: Path, case: CaseKey, **changes) -> Path:
    directory = export_config(case, out).artifact_dir()
    directory.mkdir(parents=True)
    model = directory / "model.onnx"
    model.write_bytes(b"onnx bytes")
    fields = dict(model={"name": case.model}, target=case.target,
                  artifact={"file": "model.onnx", "size_bytes": 10, "sha256": sha256_tree(model)},
                  resolution={"export": case.resolution, "dynamic": False}, command=export_command(case))
    fields.update(changes)
    Manifest(**fields).write(directory)
    return model


def test_layout_per_resolution_quantization_and_passes(tmp_path):
    assert export_config(CASE, tmp_path).artifact_dir() == tmp_path / "artifacts/r160/mobilenet_v3_small_100/onnx"
    int8 = CaseKey(model="m", target="onnx", resolution=224, quantization="int8", passes="fold_bn,fuse_attn")
    assert variant_dir(tmp_path, int8) == tmp_path / "artifacts/r224-int8-passes-fold_bn_fuse_attn"
    config = export_config(CASE, tmp_path)
    assert config.dynamic is False and config.resolution == 160 and config.target_options["backend"] == "xnnpack"


def test_an_identical_intact_export_is_reused(tmp_path):
    fake_export(tmp_path, CASE)
    found = reusable(CASE, tmp_path)
    assert found is not None and found.manifest.mobexport_version == __version__


def test_a_changed_file_or_another_export_is_not_reused(tmp_path):
    model = fake_export(tmp_path, CASE)
    model.write_bytes(b"tampered")
    assert reusable(CASE, tmp_path) is None


def test_a_dynamic_or_differently_made_artifact_is_not_reused(tmp_path):
    fake_export(tmp_path, CASE, resolution={"export": 160, "dynamic": True, "min": 96, "max": 512, "stride": 32})
    assert reusable(CASE, tmp_path) is None
    other = CaseKey(model="mobilenet_v3_small_100", target="onnx", resolution=192)
    fake_export(tmp_path, other, command=["mobexport", "--model", "x"])
    assert reusable(other, tmp_path) is None
    assert reusable(CaseKey(model="resnet18", target="onnx", resolution=160), tmp_path) is None
