"""The machine-wide export cache: a second sweep into a fresh --out exports nothing, and only
an intact, identical export is ever reused. The export itself is a stand-in (no real export)."""

from __future__ import annotations

import logging

import pytest

from mobexport.benchmarks.sweep import export_cache
from mobexport.benchmarks.sweep.artifacts import export_command, export_config, prepare
from mobexport.benchmarks.sweep.export_cache import ExportCache, cache_key, default_cache_dir
from mobexport.benchmarks.results.records import CaseKey
from mobexport.export.artifact import Artifact
from mobexport.manifest import Manifest, sha256_tree

CASE = CaseKey(model="mobilenet_v3_small_050", target="onnx", resolution=96)


@pytest.fixture
def exports(monkeypatch):
    """A stand-in for the export pipeline that writes a small artifact and counts its calls."""
    calls = []

    def fake_export_model(config, on_step=None):
        calls.append(config)
        directory = config.artifact_dir()
        directory.mkdir(parents=True)
        model = directory / "model.onnx"
        model.write_bytes(b"onnx bytes %d" % len(calls))
        Manifest(model={"name": config.model}, target=config.target,
                 artifact={"file": "model.onnx", "size_bytes": model.stat().st_size, "sha256": sha256_tree(model)},
                 resolution={"export": config.resolution, "dynamic": False}, command=list(config.command),
                 macs={"total_macs": 1234}, params=56).write(directory)
        return Artifact.open(directory)

    import mobexport.export.pipeline as pipeline

    monkeypatch.setattr(pipeline, "export_model", fake_export_model)
    return calls


def test_a_fresh_out_reuses_the_cached_export(tmp_path, exports):
    cache = tmp_path / "cache"
    first = prepare(CASE, tmp_path / "run1", cache_dir=cache)
    assert len(exports) == 1 and not first.reused
    second = prepare(CASE, tmp_path / "run2", cache_dir=cache)
    assert len(exports) == 1 and second.reused                      # not exported again
    assert second.artifact.directory == export_config(CASE, tmp_path / "run2").artifact_dir()
    assert second.artifact.verify_hash() and (second.macs, second.params) == (1234, 56)
    assert second.artifact.path.read_bytes() == first.artifact.path.read_bytes()
    assert not [p for p in cache.rglob(".*")]                      # no staging left behind


def test_a_corrupted_entry_is_removed_and_the_case_exported_again(tmp_path, exports, caplog):
    cache = tmp_path / "cache"
    prepare(CASE, tmp_path / "run1", cache_dir=cache)
    entry = ExportCache(cache).entry(cache_key(export_config(CASE, tmp_path / "run2")))
    (entry / "model.onnx").write_bytes(b"tampered")
    with caplog.at_level(logging.WARNING):
        again = prepare(CASE, tmp_path / "run2", cache_dir=cache)
    assert len(exports) == 2 and not again.reused
    assert "does not match its manifest" in caplog.text
    assert Artifact.open(entry).verify_hash()                       # replaced by the fresh export


def test_an_entry_of_another_export_is_not_reused(tmp_path, exports):
    cache = tmp_path / "cache"
    prepare(CASE, tmp_path / "run1", cache_dir=cache)
    entry = ExportCache(cache).entry(cache_key(export_config(CASE, tmp_path / "x")))
    manifest = Manifest.read(entry / "manifest.json")
    manifest.command = export_command(CaseKey(model="other", target="onnx", resolution=96))
    manifest.write(entry)
    assert not prepare(CASE, tmp_path / "run2", cache_dir=cache).reused and len(exports) == 2


def test_the_key_covers_options_checkpoint_source_and_packages(tmp_path, monkeypatch):
    config = export_config(CASE, tmp_path / "a")
    key = cache_key(config)
    assert cache_key(export_config(CASE, tmp_path / "b")) == key     # the output place is not part of it
    assert cache_key(export_config(CaseKey(**{**vars(CASE), "passes": "none"}), tmp_path)) != key
    assert cache_key(export_config(CaseKey(**{**vars(CASE), "quantization": "int8"}), tmp_path)) != key
    assert cache_key(export_config(CaseKey(**{**vars(CASE), "resolution": 128}), tmp_path)) != key
    other_options = export_config(CASE, tmp_path)
    other_options.target_options["backend"] = "portable"
    assert cache_key(other_options) != key
    checkpoint = tmp_path / "w.pt"
    checkpoint.write_bytes(b"weights 1")
    with_checkpoint = export_config(CASE, tmp_path)
    with_checkpoint.checkpoint = checkpoint
    first = cache_key(with_checkpoint)
    checkpoint.write_bytes(b"weights 2")
    assert first != key and cache_key(with_checkpoint) != first     # its content, not its name
    monkeypatch.setattr(export_cache, "package_versions", lambda: {"torch": "9.9"})
    assert cache_key(config) != key
    monkeypatch.undo()
    monkeypatch.setattr(export_cache, "source_fingerprint", lambda: "edited")
    assert cache_key(config) != key



def test_no_cache_writes_nothing(tmp_path, exports, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    prepare(CASE, tmp_path / "run1", cache_dir=None)
    prepare(CASE, tmp_path / "run2", cache_dir=None)
    assert len(exports) == 2 and not (tmp_path / "home").exists()


def test_an_unwritable_cache_only_warns(tmp_path, exports, caplog):
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache directory should be")
    with caplog.at_level(logging.WARNING):
        prepared = prepare(CASE, tmp_path / "run1", cache_dir=blocked)
    assert prepared.artifact.verify_hash() and "cannot store" in caplog.text


def test_cache_directory_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MOBEXPORT_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    for off in ("off", "none", "0", ""):
        monkeypatch.setenv("MOBEXPORT_CACHE_DIR", off)
        assert default_cache_dir() is None
    monkeypatch.delenv("MOBEXPORT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "mobexport" / "artifacts"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "mobexport" / "artifacts"


def test_prepare_uses_the_environments_cache_by_default(tmp_path, exports, monkeypatch):
    monkeypatch.setenv("MOBEXPORT_CACHE_DIR", str(tmp_path / "env-cache"))
    prepare(CASE, tmp_path / "run1")
    assert prepare(CASE, tmp_path / "run2").reused and len(exports) == 1
    assert any((tmp_path / "env-cache").rglob("manifest.json"))


def test_calibration_images_are_not_cached(tmp_path):
    # The key cannot see the images' content, so an export calibrated on a directory is never cached.
    config = export_config(CASE, tmp_path)
    config.calib_dir = tmp_path
    assert not export_cache.cacheable(config)
    assert ExportCache(tmp_path / "cache").restore(config, tmp_path / "dest", lambda a: True) is None
