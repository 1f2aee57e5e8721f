"""The content key of an export: what determines the artifact, and nothing else (no Ray needed)."""

from __future__ import annotations

from pathlib import Path

from mobexport.benchmarks.sweep.artifacts import export_config
from mobexport.benchmarks.sweep.export_cache import cache_key, model_source_hash
from mobexport.benchmarks.results.records import CaseKey

CASE = CaseKey(model="mobilenet_v3_small_075", target="onnx", resolution=96)


def test_the_key_ignores_where_the_export_goes_and_the_device():
    here = cache_key(export_config(CASE, Path("/tmp/out-a")))
    assert here == cache_key(export_config(CaseKey(**{**CASE.__dict__, "device": "adb:X"}), Path("/elsewhere")))
    assert here != cache_key(export_config(CaseKey(**{**CASE.__dict__, "resolution": 128}), Path("/tmp/out-a")))
    assert here != cache_key(export_config(CaseKey(**{**CASE.__dict__, "quantization": "int8"}), Path("/tmp/out-a")))


def test_a_user_models_source_is_part_of_the_key(tmp_path):
    source = tmp_path / "my_model.py"
    source.write_text("def make():\n    return None\n")
    reference = f"{source}:make"
    first = model_source_hash(reference)
    key = cache_key(export_config(CaseKey(**{**CASE.__dict__, "model": reference}), tmp_path))
    source.write_text("def make():\n    return 1\n")                     # the model changed, its name did not
    assert model_source_hash(reference) != first
    assert cache_key(export_config(CaseKey(**{**CASE.__dict__, "model": reference}), tmp_path)) != key
    assert model_source_hash("mobilenet_v3_small_075") == "zoo"
    assert model_source_hash("json:loads") == model_source_hash("json:dumps") != "zoo"   # the module's file
