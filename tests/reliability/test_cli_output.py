"""What a user sees: ``--json`` for scripts, and no third-party noise unless -v (issue 23 items 3, 13; 24 item 22)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

SMALL = "mobilenet_v3_small_075"


def python(code_or_args, cwd=None):
    args = ["-c", code_or_args] if isinstance(code_or_args, str) else code_or_args
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, env=env)


needs_coremltools = pytest.mark.skipif(importlib.util.find_spec("coremltools") is None or
                                       importlib.util.find_spec("torchao") is None,
                                       reason="coremltools and torchao are not installed")


@needs_coremltools
def test_converter_import_noise_is_hidden_by_default_and_shown_with_v():
    """coremltools "has not been tested", torchao "Failed to load", torch's KernelPreference line."""
    imports = "import coremltools, torchao"
    quiet = python(f"from mobexport import logs; logs.setup(logs.NORMAL); {imports}")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    verbose = python(f"from mobexport import logs; logs.setup(logs.VERBOSE); {imports}")
    assert verbose.returncode == 0
    assert "Failed to load" in verbose.stderr or "has not been tested" in verbose.stderr, verbose.stderr


def test_python_warnings_go_through_logging():
    code = ("import warnings; from mobexport import logs; logs.setup({}); "
            "warnings.warn('a converter grumbles', UserWarning)")
    assert python(code.format("logs.NORMAL")).stderr == ""
    assert "a converter grumbles" in python(code.format("logs.VERBOSE")).stderr


def test_torch_log_records_obey_our_levels():
    """torch installs its own handler at import; the hook hands its records back to ours."""
    code = ("import logging; from mobexport import logs; logs.setup({}); import torch; "
            "logging.getLogger('torch.utils._pytree').warning('torch grumbles')")
    assert python(code.format("logs.NORMAL")).stderr == ""
    assert "torch grumbles" in python(code.format("logs.VERBOSE")).stderr


def test_export_json_prints_the_manifest_on_stdout(tmp_path):
    out = tmp_path / "out"
    done = python(["-m", "mobexport", "export", "--model", SMALL, "--target", "onnx", "--resolution", "96",
                   "--static", "--passes", "none", "--parity-samples", "2", "--out", str(out), "--json"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)  # nothing else on stdout
    written = json.loads(next(out.rglob("manifest.json")).read_text())
    assert printed == written
    assert printed["model"]["name"] == SMALL and printed["resolution"]["export"] == 96
    assert done.stderr == ""  # no progress bar when piped, no third-party noise


@pytest.mark.slow
@needs_coremltools
def test_coreml_export_prints_no_converter_noise(tmp_path):
    # fp32: random-init MobileNetV3's logits (~1e-8) are below fp16's range, and parity would rightly fail.
    done = python(["-m", "mobexport", "--model", SMALL, "--target", "coreml", "--resolution", "96", "--static",
                   "--precision", "fp32", "--out", str(tmp_path / "out")], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for noise in ("KernelPreference", "Failed to load", "has not been tested", "Warning"):
        assert noise not in done.stderr, done.stderr


def test_consoles_are_wide_when_not_a_terminal(monkeypatch, capsys):
    """One place decides: pipes and files get whole rows (rich assumed 80 columns); COLUMNS still wins."""
    from mobexport.consoles import PIPE_WIDTH, stderr_console, stdout_console

    monkeypatch.delenv("COLUMNS", raising=False)
    assert stdout_console().width == stderr_console().width == PIPE_WIDTH
    monkeypatch.setenv("COLUMNS", "132")
    assert stdout_console().width == 132
    monkeypatch.delenv("COLUMNS")
    monkeypatch.setenv("TERM", "dumb")  # rich takes a forced-colour dumb terminal for 80 columns unless sized
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert stdout_console().width == stderr_console().width == PIPE_WIDTH


def test_verbosity_flags_may_come_before_the_command(capsys):
    import logging

    from mobexport.cli import main

    assert main(["-v", "devices"]) == 0
    assert logging.getLogger("mobexport").level == logging.INFO
    assert main(["devices"]) == 0
    capsys.readouterr()
