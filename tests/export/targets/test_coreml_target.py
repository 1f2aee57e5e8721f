"""Core ML target: conversion, the re-loaded package's structure, options, bad input, parity (interpreter / macOS)."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from mobexport.config import ExportConfig
from mobexport.errors import MissingDependencyError, ResolutionError, TargetOptionError
from mobexport.export.targets.coreml import target as coreml_target
from mobexport.export.pipeline import export_model
from mobexport.export.targets import get_target
from mobexport.manifest import sha256_tree, size_of

pytest.importorskip("coremltools", reason="the coreml extra is not installed")

SMALL = "mobilenet_v3_small_100"
ON_MAC = sys.platform == "darwin"


def export(out_dir, model=SMALL, resolution=96, **options):
    dynamic = options.pop("dynamic", None)
    config = ExportConfig(model=model, target="coreml", resolution=resolution, out_dir=out_dir, dynamic=dynamic,
                          parity_samples=2,
                          target_options={"precision": None, "deployment_target": "iOS16", "image_input": False,
                                          "class_labels": None, **options})
    return export_model(config)


def spec_of(artifact):
    import coremltools as ct

    return ct.models.MLModel(str(artifact.path), skip_model_load=True).get_spec()


# Random-init MobileNetV3 logits (~1e-8) are below fp16's range, so its fp16 program cannot pass parity;
# Mobile-Former-26M's (~0.1) are not.
FP16_MODEL = "mobile_former_26m"


@pytest.fixture(scope="module")
def static_fp16(tmp_path_factory):
    return export(tmp_path_factory.mktemp("coreml"), model=FP16_MODEL)


@pytest.fixture(scope="module")
def dynamic_image_classifier(tmp_path_factory):
    root = tmp_path_factory.mktemp("coreml_dyn")
    labels = root / "labels.txt"
    labels.write_text("".join(f"class {i}\n" for i in range(1000)))
    return export(root / "out", dynamic=True, image_input=True, class_labels=labels)


def test_static_fp16_package_is_reloaded_and_checked(static_fp16):
    m = static_fp16.manifest
    d = m.target_details
    path = static_fp16.path
    assert path.name == "model.mlpackage" and path.is_dir()
    assert m.artifact["size_bytes"] == size_of(path) and m.artifact["sha256"] == sha256_tree(path)
    assert d["model_type"] == "mlProgram" and d["format"] == "mlprogram"
    assert d["deployment_target"] == "iOS16" and d["specification_version"] >= 7
    assert d["compute_precision"] == "fp16" and m.tolerance["name"] == "fp16"
    assert d["inputs"] == [{"name": "input", "type": "multiArrayType", "shape": [1, 3, 96, 96], "dtype": "FLOAT32"}]
    assert d["outputs"][0]["name"] == "logits" and d["outputs"][0]["shape"] == [1, 1000]
    assert d["flexible_shapes"] == {"kind": "static", "sizes": [96]}
    histogram = d["op_histogram"]
    assert histogram["conv"] >= 50 and histogram["cast"] >= 2 and d["mil_ops"] == sum(histogram.values())
    assert histogram["layer_norm"] >= 10 and histogram["softmax"] >= 10
    # Parity is measured everywhere: by Core ML on macOS, by the MIL reference interpreter elsewhere.
    assert m.parity and all(p["passed"] for p in m.parity) and m.parity[0]["tolerance"]["name"] == "fp16"
    runtime = d["parity_runtime"]
    assert runtime["reference_interpreter"]["fp16_program"] is True
    assert runtime["reference_interpreter"]["unsupported_ops"] == []
    assert "storage precision" in runtime["reference_interpreter"]["emulation"]
    if ON_MAC:
        assert runtime["name"] == "coreml-mlmodel-predict"
        assert runtime["second_opinion"] == "coreml-reference-interpreter"
        assert runtime["agreement_with_coreml-reference-interpreter"]["cosine"] > 0.999
    else:
        assert runtime["name"] == "coreml-reference-interpreter"
        assert not any("parity not measured" in n for n in m.notes)
        assert any(n.startswith("Core ML parity measured by coreml-reference-interpreter") for n in m.notes)


def test_dynamic_image_classifier_has_enumerated_sizes_labels_and_baked_normalization(dynamic_image_classifier):
    d = dynamic_image_classifier.manifest.target_details
    sizes = list(range(96, 1025, 32))
    assert d["flexible_shapes"]["kind"] == "enumerated" and d["flexible_shapes"]["sizes"] == sizes
    (feature,) = d["inputs"]
    assert feature["type"] == "imageType" and feature["color_space"] == "RGB"
    assert sorted(s[0] for s in feature["enumerated"]) == sizes
    assert d["predicted_feature"] == "classLabel" and d["class_labels"]["count"] == 1000
    assert dynamic_image_classifier.manifest.resolution["dynamic"] is True
    # Labels come back from the package in output order (what the macOS runner keys scores by).
    from mobexport.devices.runtimes.coreml import _accepted_from_spec, _class_labels

    spec = spec_of(dynamic_image_classifier)
    assert _class_labels(spec)[:3] == ["class 0", "class 1", "class 2"] and len(_class_labels(spec)) == 1000
    accepted = _accepted_from_spec(spec.description.input[0])
    assert (accepted.min, accepted.max, accepted.stride) == (96, 1024, 32)


def test_reference_interpreter_runs_an_image_classifier_package(dynamic_image_classifier):
    """Pixels in, the classifier's scores (in label order) out, at two enumerated sizes."""
    from mobexport.devices.runtimes.coreml import CoreMLReferenceRunner

    d = dynamic_image_classifier.manifest.target_details
    assert d["parity_runtime"]["reference_interpreter"]["unsupported_ops"] == []
    x = np.random.default_rng(0).standard_normal((1, 3, 128, 128)).astype(np.float32)
    with CoreMLReferenceRunner(dynamic_image_classifier.path, image_input=d["image_input"]) as runner:
        scores = runner.infer(x)
        assert scores.shape == (1, 1000) and np.isfinite(scores).all()
        assert runner.infer(x[..., :96, :96]).shape == (1, 1000)


def test_image_scale_bias_and_channel_factors_reproduce_the_normalization():
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    pre = coreml_target.image_preprocessing(mean, std)
    pixels = np.random.default_rng(0).integers(0, 256, (3, 5, 5)).astype(np.float64)
    core_ml = (pixels * pre["scale"] + np.array(pre["bias"]).reshape(3, 1, 1)) * np.array(pre["channel_factors"]).reshape(3, 1, 1)
    expected = (pixels / 255 - np.array(mean).reshape(3, 1, 1)) / np.array(std).reshape(3, 1, 1)
    np.testing.assert_allclose(core_ml, expected, rtol=1e-12, atol=1e-12)
    assert coreml_target.image_preprocessing((0.5,) * 3, (0.5,) * 3)["channel_factors"] is None


def test_channel_factors_are_prepended_to_the_network(dynamic_image_classifier):
    d = dynamic_image_classifier.manifest.target_details
    assert d["image_input"]["channel_factors"] is not None
    # Core ML's own preprocessing (mul by scale, add bias) plus our per-channel mul come before the first conv.
    assert d["op_histogram"]["mul"] >= 2 and d["op_histogram"]["add"] >= 1


def test_fp32_precision_keeps_fp32_and_fp32_tolerance(tmp_path):
    artifact = export(tmp_path, precision="fp32", deployment_target="macOS13")
    d = artifact.manifest.target_details
    assert d["compute_precision"] == "fp32" and d["deployment_target"] == "macOS13"
    assert "cast" not in d["op_histogram"]
    assert artifact.manifest.tolerance["name"] == "fp32"


@pytest.mark.parametrize("name, message", [
    ("iOS99", "unknown Core ML deployment target 'iOS99'"),
    ("iOS14", "predates Core ML ML programs"),
])
def test_bad_deployment_target(tmp_path, name, message):
    with pytest.raises(TargetOptionError, match=message):
        export(tmp_path, deployment_target=name)


def test_deployment_target_is_case_insensitive():
    assert coreml_target.deployment_target("ios17")[0] == "iOS17"
    assert coreml_target.deployment_target("MACOS14")[0] == "macOS14"


@pytest.mark.parametrize("content, message", [
    (None, "cannot read class labels"),
    ("a\nb\n", "has 2 labels but the model has 1000 classes"),
    ("".join("same\n" if i < 2 else f"c{i}\n" for i in range(1000)), "lists the label 'same' more than once"),
])
def test_bad_class_labels(tmp_path, content, message):
    labels = tmp_path / "labels.txt"
    if content is not None:
        labels.write_text(content)
    with pytest.raises(TargetOptionError, match=message):
        export(tmp_path / "out", class_labels=labels)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.mlpackage"))


def test_missing_extra_is_one_clear_error(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "coremltools" else real(name, *a))
    with pytest.raises(MissingDependencyError, match=r'pip install "mobexport\[coreml\]"'):
        export(tmp_path)


@pytest.mark.skipif(ON_MAC, reason="checks the behaviour off macOS")
def test_off_macos_a_package_runs_on_the_reference_interpreter(static_fp16):
    from mobexport.devices.runtimes.coreml import CoreMLReferenceRunner, CoreMLRunner
    from mobexport.errors import DeviceError

    target = get_target("coreml")
    # A target that has not just lowered a package has no interpreter loaded to vouch for it.
    assert target.can_run_here() == (False, "Core ML prediction needs macOS")
    with target.load(static_fp16.path, static_fp16.manifest.__dict__) as runner:
        assert isinstance(runner, CoreMLReferenceRunner) and runner.name == "coreml-reference-interpreter"
        x = np.random.default_rng(0).standard_normal((2, 3, 96, 96)).astype(np.float32)
        logits = np.concatenate([runner.infer(x[:1]), runner.infer(x[1:])])  # the package takes batch 1
        assert logits.shape == (2, 1000) and np.isfinite(logits).all() and not np.allclose(logits[0], logits[1])
        with pytest.raises(ResolutionError):
            runner.infer(np.zeros((1, 3, 128, 128), np.float32))
    with pytest.raises(DeviceError, match="needs macOS"):
        with CoreMLRunner(static_fp16.path) as runner:
            runner.infer(np.zeros((1, 3, 96, 96), np.float32))


@pytest.mark.skipif(not ON_MAC, reason="Core ML prediction needs macOS")
@pytest.mark.parametrize("units", ["CPU_ONLY", "CPU_AND_GPU", "ALL"])
def test_macos_parity_and_size_check(static_fp16, units):
    x = np.random.default_rng(0).standard_normal((1, 3, 96, 96)).astype(np.float32)
    # The export's weights are random: the package's own program, run by the reference interpreter, is the reference.
    with get_target("coreml").load(static_fp16.path, static_fp16.manifest.__dict__, device="reference") as runner:
        reference = runner.infer(x)
    with get_target("coreml").load(static_fp16.path, static_fp16.manifest.__dict__, device=units) as runner:
        got = runner.infer(x)
        assert np.abs(got - reference).max() < 5e-2
        with pytest.raises(ResolutionError):
            runner.infer(np.zeros((1, 3, 128, 128), np.float32))


@pytest.mark.slow
@pytest.mark.parametrize("model", [
    "mobile_former_26m", "mobile_former_52m", "mobile_former_96m", "mobile_former_151m", "mobile_former_214m",
    "mobile_former_294m", "mobile_former_508m", "mobilenet_v3_small_075", "mobilenet_v3_small_100",
    "mobilenet_v3_large_075", "mobilenet_v3_large_100",
])
def test_every_mobile_former_and_mobilenet_v3_variant_converts(tmp_path, model):
    artifact = export(tmp_path, model=model, resolution=224)
    d = artifact.manifest.target_details
    assert d["model_type"] == "mlProgram" and d["inputs"][0]["shape"] == [1, 3, 224, 224]
