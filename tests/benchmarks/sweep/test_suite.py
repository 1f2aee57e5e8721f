"""Predefined suites: they load, they name real models at resolutions those models take, and bad files are refused."""

from __future__ import annotations

import json

import pytest

from mobexport.benchmarks.sweep.plan import SweepPlan
from mobexport.benchmarks.sweep.suite import list_suites, load_suite
from mobexport.errors import BenchmarkError


@pytest.mark.parametrize("name", sorted(list_suites()))
def test_shipped_suites_are_valid_sweeps(name):
    suite = load_suite(name)
    assert suite["description"] and suite["name"] == name
    targets = [t for t in suite["targets"] if t != "executorch"]  # validation imports the target's runtime
    SweepPlan(models=suite["models"], targets=targets or ["onnx"], resolutions=suite["resolutions"],
              baseline=suite.get("baseline")).validate()


def test_the_headline_suite_is_the_issue_sweep():
    suite = load_suite("mobile_former_vs_mobilenetv3")
    assert suite["models"] == ["mobile_former_294m", "mobilenet_v3_large_100"]
    assert suite["targets"] == ["onnx", "executorch"]
    assert suite["resolutions"] == [128, 160, 192, 224, 256, 320, 384, 448, 512]


def test_suite_files_of_your_own(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"models": ["resnet18"], "targets": ["onnx"], "resolutions": [224],
                                "android": {"ort_perf_test": "bin/onnxruntime_perf_test", "cooldown_c": 40}}))
    suite = load_suite(str(path))
    assert suite["name"] == "mine" and suite["android"]["cooldown_c"] == 40
    assert suite["android"]["ort_perf_test"] == str(tmp_path / "bin/onnxruntime_perf_test")


@pytest.mark.parametrize("content, message", [
    ('models = ["resnet18"]\nresolution = [224]\n', "unknown key 'resolution'"),
    ('models = "resnet18"\n', "models must be array, not str"),
    ('models = [\n', "cannot be read"),
    ('[android]\nrunner = "x"\n', "android has an unknown key 'runner'"),
])
def test_bad_suite_files(tmp_path, content, message):
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(BenchmarkError, match=message.replace("[", r"\[")):
        load_suite(str(path))


def test_missing_suite_file(tmp_path):
    with pytest.raises(BenchmarkError, match="does not exist"):
        load_suite(str(tmp_path / "nope.toml"))
