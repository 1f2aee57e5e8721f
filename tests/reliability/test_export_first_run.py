"""What a first export says and leaves behind (issue 23, items 10, 11, 14), on one real export.

mobilenet_v3_small_075 to ONNX at a static 96x96 without graph passes: the
smallest export the zoo has.
"""

from __future__ import annotations

import contextlib
import io
import json
import stat
from types import SimpleNamespace

import pytest

from mobexport.benchmarks.results.records import BenchRecord, CaseKey
from mobexport.benchmarks.sweep.run import failed_record
from mobexport.cli import main
from mobexport.export.pipeline import readable_input_dims
from mobexport.manifest import PARAMS_DEFINITION, RANDOM_WEIGHTS_NOTE, current_umask, vcs_revision

MODEL = "mobilenet_v3_small_075"


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    out = tmp_path_factory.mktemp("first-run")
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = main(["--model", MODEL, "--target", "onnx", "--resolution", "96", "--static", "--passes", "none",
                       "--parity-samples", "1", "--out", str(out)])
    assert status == 0, stderr.getvalue()
    directory = out / MODEL / "onnx"
    return SimpleNamespace(directory=directory, summary=stdout.getvalue(),
                           manifest=json.loads((directory / "manifest.json").read_text()))


def test_without_a_checkpoint_the_first_line_says_random_weights(export):
    first = next(line for line in export.summary.splitlines() if line.strip())
    assert RANDOM_WEIGHTS_NOTE in first
    assert export.manifest["random_weights"] is True and RANDOM_WEIGHTS_NOTE in export.manifest["notes"]


def test_one_parameter_count_with_its_definition(export):
    m = export.manifest
    assert isinstance(m["params"], int) and m["params"] > 1e6
    assert m["params_definition"] == PARAMS_DEFINITION
    assert "params" not in m["macs"], "a second, post-folding count beside params"
    assert "reference" not in next(line for line in export.summary.splitlines() if "params" in line)


def test_static_input_dims_are_concrete(export):
    for entry in export.manifest["target_details"]["inputs"] + export.manifest["target_details"]["outputs"]:
        assert all(isinstance(d, int) for d in entry["shape"]), entry


def test_dynamic_dims_read_as_what_they_accept():
    traced = SimpleNamespace(dynamic=True, min_resolution=96, max_resolution=1024, stride=32, resolution=224)
    details = {"inputs": [{"name": "input", "shape": [1, 3, "32*s38", "32*s35"]}]}
    assert readable_input_dims(details, traced)["inputs"][0]["shape"] == [1, 3, "96..1024 step 32",
                                                                           "96..1024 step 32"]
    static = SimpleNamespace(dynamic=False, resolution=160, min_resolution=160, max_resolution=160, stride=32)
    assert readable_input_dims(details, static)["inputs"][0]["shape"] == [1, 3, 160, 160]


def test_the_revision_is_in_the_manifest_and_in_bench_records(export):
    revision = vcs_revision()
    assert revision != "unknown"  # this test runs from mobexport's own checkout
    assert export.manifest["mobexport_revision"] == revision
    record = failed_record(CaseKey(model=MODEL, target="onnx", resolution=96), "x", {})
    assert record.mobexport_revision == revision
    assert json.loads(record.to_json())["mobexport_revision"] == revision
    assert BenchRecord(case=CaseKey(model=MODEL, target="onnx", resolution=96)).mobexport_revision == "unknown"


def test_every_artifact_file_gets_the_umask_modes(export):
    umask = current_umask()
    root = export.directory.resolve()
    for path in [root, *root.rglob("*")]:
        expected = (0o777 if path.is_dir() else 0o666) & ~umask
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def test_inspect_is_readable_and_verified(export, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    assert main(["inspect", str(export.directory)]) == 0
    out = capsys.readouterr().out
    assert "sha256 verified" in out and "{'" not in out and "input [1, 3, 96, 96]" in out
    assert f"revision {vcs_revision()}" in out
