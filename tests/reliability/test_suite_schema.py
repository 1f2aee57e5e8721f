"""Issue 24 item 16: suite files (.toml/.json) with wrong types give one line and exit 2 through the same
schema treatment as results and baselines (field path in the message), before anything is measured."""

from __future__ import annotations

import json

import pytest

from mobexport.benchmarks.sweep import cli as bench_cli

from .sweep_helpers import assert_one_line_error, run_cli


@pytest.fixture(autouse=True)
def no_sweep(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a bad suite started a sweep")

    monkeypatch.setattr(bench_cli, "run_sweep", refuse)


@pytest.mark.parametrize("content, fragments", [
    ('models = ["mobilenet_v3_small_075"]\ntargets = ["pytorch"]\nresolutions = ["96", "128"]\n',
     ["resolutions[", "] must be an integer or HEIGHTxWIDTH, not '1"]),
    ('models = [1, 2]\ntargets = ["pytorch"]\nresolutions = [96]\n', ["models[", "] must be string, not int"]),
    ('models = "mobilenet_v3_small_075"\n', ["models must be array, not str"]),
    ('models = ["m"]\nmin_time = inf\n', ["min_time must be a finite number, not inf"]),
    ('models = ["m"]\nwarmup_time = nan\n', ["warmup_time must be a finite number, not nan"]),
    ('models = ["m"]\nthreads = true\n', ["threads True is not valid"]),
    ('models = ["m"]\nbatch = 0\n', ["batch must be >= 1, not 0"]),
    ('models = ["m"]\nresolutions = []\n', ["resolutions must have at least 1 item"]),
    ('[android]\ncooldown_c = "hot"\n', ["android.cooldown_c must be number, not str"]),
    ('models = ["m"]\nresolution = [224]\n', ["unknown key 'resolution'"]),
    ('models = [\n', ["cannot be read"]),
])
def test_bad_toml_suites(tmp_path, capsys, content, fragments):
    path = tmp_path / "suite.toml"
    path.write_text(content)
    status, _, err = run_cli(capsys, "bench", "--suite", path, "--out", tmp_path / "out")
    assert_one_line_error(status, err, str(path), *fragments)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content, fragments", [
    ('["mobilenet_v3_small_075"]', ["is not a table of settings"]),
    ('{"models": ["m"], "min_time": Infinity}', ["Infinity is not a finite number"]),
    ('{"models": ["m"], "cpus": [0, "1"]}', ["cpus[1] must be integer, not str"]),
    ('{"models": ["m"], "android": "adb"}', ["android must be object, not str"]),
])
def test_bad_json_suites(tmp_path, capsys, content, fragments):
    path = tmp_path / "suite.json"
    path.write_text(content)
    status, _, err = run_cli(capsys, "bench", "--suite", path, "--out", tmp_path / "out")
    assert_one_line_error(status, err, *fragments)


def test_a_suite_with_non_utf8_bytes(tmp_path, capsys):
    path = tmp_path / "suite.toml"
    path.write_bytes(b'models = ["\xff"]\n')
    status, _, err = run_cli(capsys, "bench", "--suite", path)
    assert_one_line_error(status, err, "is not UTF-8 text")


def test_a_valid_suite_of_your_own_still_loads(tmp_path):
    from mobexport.benchmarks.sweep.suite import load_suite

    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"models": ["resnet18"], "targets": ["onnx"], "resolutions": [224], "min_time": 0.5,
                                "android": {"cooldown_c": 40}}))
    assert load_suite(str(path))["min_time"] == 0.5
