"""``mobexport list``: a prefix or substring finds models, a miss names the closest ones, JSON for scripts,
and the target status says exactly what works here (issue 23 items 3, 7, 12)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from mobexport.cli import main
from mobexport.models.registry import list_models, match_models


def run(capsys, *argv):
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize("query, expected", [
    ("cmt", ["cmt_b", "cmt_s", "cmt_ti", "cmt_xs"]),            # a prefix (found nothing before)
    ("former_29", ["mobile_former_294m"]),                       # a substring
    ("Mobile-Former_294M", ["mobile_former_294m"]),              # case and '-' do not matter
    ("cmt_*", ["cmt_b", "cmt_s", "cmt_ti", "cmt_xs"]),          # a glob
    ("cmt_s", ["cmt_s"]),                                        # an exact name is only itself
])
def test_match_models(query, expected):
    assert match_models(query) == expected


def test_list_by_prefix(capsys):
    status, out, _ = run(capsys, "list", "cmt")
    assert status == 0
    for name in ("cmt_b", "cmt_s", "cmt_ti", "cmt_xs"):
        assert name in out
    assert "mobile_former" not in out


def test_no_match_names_the_closest_models(capsys):
    status, _, err = run(capsys, "list", "cmtx")
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1, err
    assert "no model matches 'cmtx'" in lines[0] and "cmt_xs" in lines[0]


def test_list_json(capsys):
    status, out, _ = run(capsys, "list", "--json")
    assert status == 0
    data = json.loads(out)
    assert [m["name"] for m in data["models"]] == list_models()
    small = next(m for m in data["models"] if m["name"] == "mobilenet_v3_small_100")
    assert small["family"] == "mobilenetv3" and small["params"] > 1_000_000 and small["default_resolution"] == 224
    assert set(data["targets"]) >= {"onnx", "executorch", "coreml", "tensorrt"}
    assert all(t["state"] in ("ready", "partial", "missing") for t in data["targets"].values())


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_tensorrt_without_tensorrt_says_onnx_only(capsys):
    """The extra installs no TensorRT: only --build-engine no works, and list says so instead of "installed"."""
    status, out, _ = run(capsys, "list", "cmt_s", "--json")
    assert status == 0
    tensorrt = json.loads(out)["targets"]["tensorrt"]
    if tensorrt["state"] == "missing":
        pytest.skip("the onnx extra is not installed here")
    assert tensorrt["state"] == "partial"
    assert tensorrt["detail"].startswith("onnx-only: --build-engine no works")
    assert "install tensorrt on an NVIDIA host" in tensorrt["detail"]


def test_piped_list_is_not_squeezed_to_80_columns(tmp_path):
    """``mobexport list | cat``: one line per model, no cell cut with an ellipsis."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    done = subprocess.run([sys.executable, "-m", "mobexport", "list"], capture_output=True, text=True, env=env,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "…" not in done.stdout
    for name in list_models():
        row = next(line for line in done.stdout.splitlines() if f" {name} " in line)
        assert "step" in row  # the 'accepts' cell is on the model's own line, whole
    assert done.stderr == ""  # no third-party noise
