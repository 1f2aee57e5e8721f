"""Another variant of a model's export never silently replaces the first (issue 23, item 4).

No model is built: the refusal comes before any slow work, which the tests
prove by making model construction fail.
"""

from __future__ import annotations

import pytest

from mobexport.config import ExportConfig
from mobexport.errors import OutputDirError
from mobexport.export import pipeline
from mobexport.export.artifact import staging_directory
from mobexport.export.variant import check_replaceable, variant_of
from mobexport.manifest import Manifest, sha256_tree

MODEL = "mobilenet_v3_small_075"
OPTIONS = {"backend": "xnnpack", "precision": None, "build_engine": True}


def config(tmp_path, **changes) -> ExportConfig:
    fields = dict(model=MODEL, target="onnx", resolution=96, dynamic=False, out_dir=tmp_path / "out",
                  target_options=dict(OPTIONS))
    fields.update(changes)
    return ExportConfig(**fields)


def publish_existing(tmp_path, recorded_variant: dict | None, **manifest_fields) -> ExportConfig:
    """An artifact at OUT/MODEL/onnx from an earlier export (with a variant record, or an older manifest's facts)."""
    existing = config(tmp_path)
    with staging_directory(existing.artifact_dir()) as staging:
        (staging / "model.onnx").write_bytes(b"the first export")
        fields = dict(model={"name": MODEL}, target="onnx", resolution={"export": 96, "dynamic": False},
                      artifact={"file": "model.onnx", "sha256": sha256_tree(staging / "model.onnx")})
        fields.update(manifest_fields)
        if recorded_variant is not None:
            fields["variant"] = recorded_variant
        Manifest(**fields).write(staging)
    return existing


@pytest.fixture
def no_slow_work(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the refusal must come before the model is built")

    monkeypatch.setattr(pipeline, "create_model", refuse)


def test_another_resolution_is_refused_without_force(tmp_path, no_slow_work):
    """Old code: the second export replaced the first silently (OUT/MODEL/TARGET for both)."""
    existing = publish_existing(tmp_path, variant_of(config(tmp_path), 96, False, 1000))
    with pytest.raises(OutputDirError) as refused:
        pipeline.export_model(config(tmp_path, resolution=128))
    assert "resolution 96 there, 128 here" in refused.value.one_line()
    assert "--force" in refused.value.one_line()
    assert (existing.artifact_dir() / "model.onnx").read_bytes() == b"the first export"


def test_another_quantization_of_an_older_manifest_is_refused(tmp_path, no_slow_work):
    publish_existing(tmp_path, None, quantization={"mode": "none"})
    with pytest.raises(OutputDirError, match="quantize 'none' there, 'fp16' here"):
        pipeline.export_model(config(tmp_path, quantize="fp16"))


@pytest.mark.parametrize("change", [{"dynamic": True}, {"passes": "none"}, {"num_classes": 10},
                                    {"target_options": {**OPTIONS, "precision": "fp32"}}])
def test_every_variant_option_counts(tmp_path, change):
    publish_existing(tmp_path, variant_of(config(tmp_path), 96, False, 1000))
    wanted = config(tmp_path, **change)
    with pytest.raises(OutputDirError, match="holds another export"):
        check_replaceable(wanted, variant_of(wanted, 96, bool(wanted.dynamic), wanted.num_classes or 1000))


def test_the_same_variant_and_force_are_not_refused(tmp_path):
    same = config(tmp_path)
    publish_existing(tmp_path, variant_of(same, 96, False, 1000))
    check_replaceable(same, variant_of(same, 96, False, 1000))
    forced = config(tmp_path, resolution=128, force=True)
    check_replaceable(forced, variant_of(forced, 128, False, 1000))


def test_a_directory_that_is_not_ours_is_refused_before_slow_work(tmp_path, no_slow_work):
    target_dir = config(tmp_path).artifact_dir()
    target_dir.mkdir(parents=True)
    (target_dir / "thesis.tex").write_text("mine")
    with pytest.raises(OutputDirError, match="did not write"):
        pipeline.export_model(config(tmp_path))
    assert (target_dir / "thesis.tex").read_text() == "mine"


def test_a_damaged_artifact_is_replaced_not_refused(tmp_path):
    """Nothing identifies its variant, and bench (which has no --force) must be able to re-export it."""
    existing = publish_existing(tmp_path, None)
    (existing.artifact_dir() / "manifest.json").write_text("{ torn")
    wanted = config(tmp_path, resolution=128)
    check_replaceable(wanted, variant_of(wanted, 128, False, 1000))


def test_the_cli_refuses_another_variant_in_one_line_and_force_gets_past_it(tmp_path, no_slow_work, capsys):
    from mobexport.cli import main

    publish_existing(tmp_path, variant_of(config(tmp_path), 96, False, 1000))
    argv = ["--model", MODEL, "--target", "onnx", "--resolution", "128", "--static", "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--force" in err[0]
    # With --force the refusal is gone: the export goes on and reaches model construction (stubbed to fail here).
    with pytest.raises(AssertionError, match="before the model is built"):
        main([*argv, "--force"])
