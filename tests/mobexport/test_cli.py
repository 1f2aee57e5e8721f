"""The main command end to end, and every bad input it must refuse in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from mobexport.cli import main
from mobexport.export.targets.onnx.target import OnnxTarget

SMALL = "mobilenet_v3_small_100"


def run_cli(capsys, *argv):
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_line_error(status, err, *fragments, code=2):
    assert status == code
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error:")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def leftovers(root):
    return sorted(p.name for p in root.rglob("*")) if root.exists() else []


def test_export_writes_artifact_manifest_and_summary(capsys, out_dir):
    status, out, err = run_cli(capsys, "--model", SMALL, "--target", "onnx", "--resolution", "96", "--out", str(out_dir))
    assert status == 0, err
    artifact = out_dir / SMALL / "onnx"
    assert sorted(p.name for p in artifact.iterdir() if not p.name.startswith(".")) == ["manifest.json", "model.onnx"]
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["schema_version"] == 1
    assert manifest["checkpoint"] == {"sha256": "random-init"}
    assert [p["resolution"] for p in manifest["parity"]] == [96, 160]
    assert all(p["passed"] and p["max_abs_error"] < 1e-4 for p in manifest["parity"])
    assert manifest["resolution"]["dynamic"] is True
    assert manifest["artifact"]["size_bytes"] == (artifact / "model.onnx").stat().st_size
    assert "parity @96" in out and "ok" in out
    assert not list(out_dir.rglob(".*.partial-*"))  # no staging leftovers


def test_unknown_model_suggests_close_names(capsys):
    status, _, err = run_cli(capsys, "--model", "mobile_former_249m", "--target", "onnx")
    assert_one_line_error(status, err, "unknown model 'mobile_former_249m'", "mobile_former_294m")


def test_unknown_target(capsys):
    status, _, err = run_cli(capsys, "--model", SMALL, "--target", "tflite")
    assert_one_line_error(status, err, "unknown target 'tflite'", "onnx")


@pytest.mark.parametrize("resolution, problem", [("80", "outside"), ("2048", "outside"), ("230", "not a multiple of 32")])
def test_bad_resolution(capsys, resolution, problem):
    status, _, err = run_cli(capsys, "--model", SMALL, "--target", "onnx", "--resolution", resolution)
    assert_one_line_error(status, err, problem, "--resolution")


def test_missing_checkpoint(capsys, tmp_path):
    status, _, err = run_cli(capsys, "--model", SMALL, "--target", "onnx", "--checkpoint", str(tmp_path / "nope.pth"))
    assert_one_line_error(status, err, "does not exist")


def test_corrupt_checkpoint(capsys, tmp_path):
    path = tmp_path / "broken.pth"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    status, _, err = run_cli(capsys, "--model", SMALL, "--target", "onnx", "--checkpoint", str(path))
    assert_one_line_error(status, err, "unreadable")


def test_checkpoint_of_another_model(capsys, tmp_path, out_dir):
    from mobexport.models import create_model

    path = tmp_path / "large.pth"
    torch.save(create_model("mobilenet_v3_large_100").state_dict(), path)
    status, _, err = run_cli(capsys, "--model", SMALL, "--target", "onnx", "--checkpoint", str(path), "--out", str(out_dir))
    assert_one_line_error(status, err, "does not fit mobilenet_v3_small_100", "missing", "other shapes")
    assert leftovers(out_dir) == []


def test_missing_dependency_names_the_extra(capsys, monkeypatch):
    monkeypatch.setattr(OnnxTarget, "missing", lambda self: ("onnxruntime", "onnxruntime"))
    status, _, err = run_cli(capsys, "--model", SMALL, "--target", "onnx")
    assert_one_line_error(status, err, "onnxruntime", 'pip install "mobexport[onnx]"')


def test_unwritable_out_dir(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    status, _, err = run_cli(capsys, "--model", SMALL, "--target", "onnx", "--resolution", "96", "--out", str(blocker / "out"))
    assert_one_line_error(status, err, "cannot write", "--out")


def test_failed_parity_leaves_nothing_behind(capsys, out_dir):
    status, _, err = run_cli(capsys, "--model", SMALL, "--target", "onnx", "--resolution", "96",
                             "--tolerance", "0", "--out", str(out_dir))
    assert_one_line_error(status, err, "differs from PyTorch", "@96", code=3)  # a failed export, not bad input
    assert leftovers(out_dir / SMALL) == []


def test_unsupported_option_is_refused_not_ignored(capsys):
    status, _, err = run_cli(capsys, "--model", SMALL, "--target", "onnx", "--passes", "no_such_pass")
    assert_one_line_error(status, err, "no_such_pass")


def test_debug_shows_the_traceback():
    with pytest.raises(Exception, match="unknown model"):
        main(["--model", "nope", "--target", "onnx", "--debug"])


def test_list_filters(capsys):
    status, out, _ = run_cli(capsys, "list", "mobilenet_v3_small*")
    assert status == 0
    assert "mobilenet_v3_small_100" in out and "mobilenet_v3_small_075" in out
    assert "mobile_former" not in out


def test_list_with_no_match_is_an_error(capsys):
    status, _, err = run_cli(capsys, "list", "zzz*")
    assert_one_line_error(status, err, "no model matches")


def test_console_script_exit_status(tmp_path):
    """The installed entry point, as users type it, maps errors to exit 2."""
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-m", "mobexport.cli", "--model", "nope", "--target", "onnx"],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_explain_prints_the_pass_report_and_verify_passes_checks_them(capsys, out_dir):
    status, out, err = run_cli(capsys, "--model", SMALL, "--target", "onnx", "--resolution", "96", "--static",
                               "--explain", "--verify-passes", "--out", str(out_dir))
    assert status == 0, err
    manifest = json.loads((out_dir / SMALL / "onnx" / "manifest.json").read_text())
    passes = {p["id"]: p for p in manifest["passes"]}
    fold = passes["fold_batchnorm"]
    assert fold["rewrites"] > 20 and fold["skipped"] == []
    assert 0 <= fold["details"]["verified_max_relative_error"] < 1e-5  # --verify-passes ran
    assert "graph passes" in out
    for pass_id, p in passes.items():
        row = next(line for line in out.splitlines() if pass_id in line)
        assert f" {p['rewrites']} " in row, row
    # the ONNX target's default leaves this pass out, and says so
    assert "sink_channel_interleave" not in passes
    assert "left out of onnx's default" in out and "sink_channel_interleave" in out


def test_passes_none_with_explain_runs_no_pass(capsys, out_dir):
    status, out, err = run_cli(capsys, "--model", SMALL, "--target", "onnx", "--resolution", "96", "--static",
                               "--passes", "none", "--explain", "--out", str(out_dir))
    assert status == 0, err
    assert json.loads((out_dir / SMALL / "onnx" / "manifest.json").read_text())["passes"] == []
    assert "graph passes: none ran" in out


@pytest.mark.slow
def test_explain_on_mobile_former(capsys, out_dir):
    status, out, err = run_cli(capsys, "--model", "mobile_former_26m", "--target", "onnx", "--resolution", "128",
                               "--explain", "--out", str(out_dir))
    assert status == 0, err
    manifest = json.loads((out_dir / "mobile_former_26m" / "onnx" / "manifest.json").read_text())
    passes = {p["id"]: p for p in manifest["passes"]}
    assert passes["fold_batchnorm"]["rewrites"] == 32
    assert passes["fold_dynamic_relu"]["rewrites"] == 16
    assert manifest["resolution"]["dynamic"] is True
    assert all(p["passed"] for p in manifest["parity"])
    assert passes["fold_dynamic_relu"]["details"]["hyper_functions_folded"] == 16
    assert "fold_dynamic_relu" in out and "graph passes" in out
