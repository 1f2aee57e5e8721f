"""A manifest is untrusted input: every malformed or hostile one is one line and exit 2 (issue 24, items 1-3, 14).

No export is needed: each case writes an artifact directory by hand, the way a
user's copied or edited one would look.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mobexport.cli import main
from mobexport.export.artifact import Artifact
from mobexport.manifest import MANIFEST_NAME, Manifest, ManifestError, sha256_tree

SECRET = b"root:x:0:0:not-an-artifact\n"


def write_artifact(directory: Path, payload: bytes = b"onnx bytes", **changes) -> Path:
    """A complete, valid artifact directory with a manifest of every section."""
    directory.mkdir(parents=True, exist_ok=True)
    main_file = directory / "model.onnx"
    main_file.write_bytes(payload)
    fields = dict(
        model={"name": "mobilenet_v3_small_075", "family": "mobilenetv3", "num_classes": 1000,
               "reference_params": 2_040_000, "reference_macs": 44_000_000, "default_resolution": 224,
               "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
        target="onnx",
        artifact={"file": "model.onnx", "size_bytes": len(payload), "sha256": sha256_tree(main_file)},
        resolution={"export": 96, "dynamic": False, "min": 96, "max": 96, "stride": 32},
        passes=[{"id": "fold_batchnorm", "rewrites": 34, "skipped": [{"site": "bn1", "reason": "shared"}],
                 "details": {"seconds": 0.5}}],
        parity=[{"resolution": 96, "passed": True, "max_abs_error": 1e-6, "cosine": 1.0, "top1_agreement": 1.0,
                 "samples": 8, "tolerance": {"name": "fp32"}}],
        tolerance={"name": "fp32", "max_abs_error": 1e-4},
        macs={"total_macs": 9_400_000, "resolution": 96},
        params=2_041_872,
        timings_s={"build": 0.2, "lower": 9.3},
        target_details={"opset": 18, "inputs": [{"name": "input", "shape": [1, 3, 96, 96]}],
                        "op_histogram": {"Conv": 53}},
        notes=["a note"],
        command=["mobexport", "--model", "mobilenet_v3_small_075"],
    )
    fields.update(changes)
    Manifest(**fields).write(directory)
    return directory


def rewrite_manifest(directory: Path, edit) -> None:
    path = directory / MANIFEST_NAME
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def inspect(capsys, *argv) -> tuple[int, str, str]:
    status = main(["inspect", *map(str, argv)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_line_error(status: int, out: str, err: str, *fragments: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2, (status, out, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "sha256 verified" not in out
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")


@pytest.fixture
def secret(tmp_path) -> Path:
    path = tmp_path / "outside" / "passwd"
    path.parent.mkdir()
    path.write_bytes(SECRET)
    return path


def test_a_valid_artifact_inspects_and_verifies(tmp_path, capsys):
    status, out, err = inspect(capsys, write_artifact(tmp_path / "a"))
    assert status == 0, err
    assert "sha256 verified" in out and "{'" not in out  # readable, no raw dict reprs


# --------------------------------------------------------------------------- 1. confinement


@pytest.mark.parametrize("name", ["../outside/passwd", "../../../../../../../../etc/passwd"])
def test_a_relative_path_out_of_the_artifact_is_refused(tmp_path, capsys, secret, name):
    directory = write_artifact(tmp_path / "a")
    rewrite_manifest(directory, lambda d: d["artifact"].update(file=name, sha256=sha256_tree(secret)))
    assert_one_line_error(*inspect(capsys, directory), "artifact.file")


@pytest.mark.parametrize("name", ["ABSOLUTE", "/", ".", ".."])
def test_absolute_root_and_dot_paths_are_refused(tmp_path, capsys, secret, name):
    directory = write_artifact(tmp_path / "a")
    name = str(secret) if name == "ABSOLUTE" else name
    rewrite_manifest(directory, lambda d: d["artifact"].update(file=name, sha256=sha256_tree(secret)))
    assert_one_line_error(*inspect(capsys, directory), "artifact.file")


def test_a_symlink_to_a_file_elsewhere_is_refused(tmp_path, capsys, secret):
    """The manifest carries the outside file's true hash: old code printed "sha256 verified"."""
    directory = write_artifact(tmp_path / "a")
    (directory / "model.onnx").unlink()
    (directory / "model.onnx").symlink_to(secret)
    rewrite_manifest(directory, lambda d: d["artifact"].update(sha256=sha256_tree(secret)))
    assert_one_line_error(*inspect(capsys, directory), "outside the artifact directory")
    with pytest.raises(ManifestError):
        Artifact.open(directory).path


def test_a_symlinked_manifest_to_elsewhere_is_refused(tmp_path, capsys):
    elsewhere = write_artifact(tmp_path / "elsewhere")
    directory = write_artifact(tmp_path / "a")
    (directory / MANIFEST_NAME).unlink()
    (directory / MANIFEST_NAME).symlink_to(elsewhere / MANIFEST_NAME)
    assert_one_line_error(*inspect(capsys, directory), "manifest.json")


def test_bench_does_not_reuse_an_artifact_pointing_outside(tmp_path, secret):
    from mobexport.benchmarks.sweep.artifacts import export_command, export_config, reusable
    from mobexport.benchmarks.results.records import CaseKey

    case = CaseKey(model="mobilenet_v3_small_075", target="onnx", resolution=96)
    directory = export_config(case, tmp_path).artifact_dir()
    write_artifact(directory, command=export_command(case))
    (directory / "model.onnx").unlink()
    (directory / "model.onnx").symlink_to(secret)
    rewrite_manifest(directory, lambda d: d["artifact"].update(sha256=sha256_tree(secret)))
    assert reusable(case, tmp_path) is None


# --------------------------------------------------------------------------- 2. missing paths


def test_a_missing_path_is_named_as_typed_not_its_neighbour(tmp_path, capsys, monkeypatch):
    """Old code took the parent of anything that is not a directory and verified the artifact beside it."""
    write_artifact(tmp_path / "a")
    monkeypatch.chdir(tmp_path)
    line = assert_one_line_error(*inspect(capsys, "a/typo.onnx"), "'a/typo.onnx' does not exist")
    assert "manifest.json" not in line.split("(")[0]


def test_a_missing_directory_is_named_as_typed(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = assert_one_line_error(*inspect(capsys, "no/such/dir"), "'no/such/dir' does not exist")
    assert "no/such/dir/manifest.json" not in line


def test_a_file_that_is_not_the_main_file_is_refused(tmp_path, capsys):
    directory = write_artifact(tmp_path / "a")
    (directory / "notes.txt").write_text("mine")
    assert_one_line_error(*inspect(capsys, directory / "notes.txt"), "not the main file")


# --------------------------------------------------------------------------- 3. --json verifies too


def test_inspect_json_verifies_the_hash(tmp_path, capsys):
    directory = write_artifact(tmp_path / "a")
    status, out, err = inspect(capsys, directory, "--json")
    assert status == 0, err
    assert json.loads(out)["verification"]["sha256_verified"] is True
    (directory / "model.onnx").write_bytes(b"changed")
    status, out, err = inspect(capsys, directory, "--json")
    assert json.loads(out)["verification"]["sha256_verified"] is False
    assert_one_line_error(status, "", err, "does not match its manifest's sha256")


# --------------------------------------------------------------------------- 14. malformed manifests


WRONG_TYPES = {
    "file is an integer": (lambda d: d["artifact"].update(file=5), "artifact.file"),
    "artifact is a string": (lambda d: d.update(artifact="model.onnx"), "artifact"),
    "parity is a string": (lambda d: d.update(parity="ok"), "parity"),
    "a parity entry lacks fields": (lambda d: d["parity"][0].pop("cosine"), "parity.0"),
    "params is a string": (lambda d: d.update(params="2M"), "params"),
    "notes hold a number": (lambda d: d["notes"].append(3), "notes.1"),
    "resolution is negative": (lambda d: d["resolution"].update(export=-96), "resolution.export"),
    "schema_version is -7": (lambda d: d.update(schema_version=-7), "schema_version"),
    "schema_version is 0": (lambda d: d.update(schema_version=0), "schema_version"),
    "schema_version is missing": (lambda d: d.pop("schema_version"), "schema_version"),
    "sha256 is not hex": (lambda d: d["artifact"].update(sha256="zz"), "artifact.sha256"),
    "timings hold a string": (lambda d: d["timings_s"].update(build="fast"), "timings_s.build"),
}


@pytest.mark.parametrize("case", list(WRONG_TYPES))
def test_wrong_types_are_one_line_naming_the_field(tmp_path, capsys, case):
    edit, field_path = WRONG_TYPES[case]
    directory = write_artifact(tmp_path / "a")
    rewrite_manifest(directory, edit)
    assert_one_line_error(*inspect(capsys, directory), field_path)


@pytest.mark.parametrize("text", ["[1, 2, 3]", '"a string"', "null", "42"])
def test_a_top_level_that_is_not_an_object_is_refused(tmp_path, capsys, text):
    directory = write_artifact(tmp_path / "a")
    (directory / MANIFEST_NAME).write_text(text)
    assert_one_line_error(*inspect(capsys, directory), "the top level")


def test_a_newer_schema_says_upgrade(tmp_path, capsys):
    directory = write_artifact(tmp_path / "a")
    rewrite_manifest(directory, lambda d: d.update(schema_version=99, artifact="changed shape"))
    assert_one_line_error(*inspect(capsys, directory), "upgrade mobexport")


def test_non_utf8_bytes_are_refused(tmp_path, capsys):
    directory = write_artifact(tmp_path / "a")
    path = directory / MANIFEST_NAME
    path.write_bytes(path.read_bytes().replace(b'"a note"', b'"a \xff\xfe note"'))
    assert_one_line_error(*inspect(capsys, directory), "not UTF-8")


def test_deep_nesting_is_refused_without_recursion_error(tmp_path, capsys):
    directory = write_artifact(tmp_path / "a")
    (directory / MANIFEST_NAME).write_text("[" * 100_000 + "]" * 100_000)
    assert_one_line_error(*inspect(capsys, directory), "nests JSON too deeply")


def test_an_oversized_manifest_is_refused_unread(tmp_path, capsys):
    directory = write_artifact(tmp_path / "a")
    with open(directory / MANIFEST_NAME, "ab") as f:
        f.truncate(17 << 20)
    assert_one_line_error(*inspect(capsys, directory), "larger than")


def test_a_huge_integer_literal_is_refused(tmp_path, capsys):
    directory = write_artifact(tmp_path / "a")
    text = (directory / MANIFEST_NAME).read_text().replace('"params": 2041872', '"params": ' + "9" * 5000)
    (directory / MANIFEST_NAME).write_text(text)
    assert_one_line_error(*inspect(capsys, directory), "not valid JSON")


def test_a_fifo_manifest_does_not_hang(tmp_path):
    """Old code blocked forever opening the FIFO; run in a subprocess so a hang is a timeout, not a stuck suite."""
    directory = write_artifact(tmp_path / "a")
    (directory / MANIFEST_NAME).unlink()
    os.mkfifo(directory / MANIFEST_NAME)
    for target in (directory, directory / MANIFEST_NAME):
        done = subprocess.run([sys.executable, "-m", "mobexport.cli", "inspect", str(target)],
                              capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "400"})
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 2 and len(lines) == 1 and "not a regular file" in lines[0], done.stderr


def test_a_directory_named_manifest_is_refused(tmp_path, capsys):
    directory = write_artifact(tmp_path / "a")
    (directory / MANIFEST_NAME).unlink()
    (directory / MANIFEST_NAME).mkdir()
    assert_one_line_error(*inspect(capsys, directory), "not a regular file")


def test_control_characters_in_values_stay_on_one_line(tmp_path, capsys):
    directory = write_artifact(tmp_path / "a")
    rewrite_manifest(directory, lambda d: d["artifact"].update(file="evil\nname\x1b[2J"))
    assert_one_line_error(*inspect(capsys, directory), "artifact.file")


def test_a_symlink_loop_is_one_line(tmp_path, capsys):
    directory = write_artifact(tmp_path / "a")
    (directory / "model.onnx").unlink()
    (directory / "model.onnx").symlink_to(directory / "model.onnx")
    assert_one_line_error(*inspect(capsys, directory), "artifact.file")
