"""Exit statuses: 2 is "you typed it wrong", 3 "the export ran and failed" (issue 23 item 5), 130 interrupted.

No export runs here: the pipeline is replaced by one that fails the way a real one does.
"""

from __future__ import annotations

import pytest

import mobexport.export.pipeline as pipeline
from mobexport.cli import main
from mobexport.errors import (
    EXIT_EXPORT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_STATUSES,
    EXIT_USAGE,
    ExportError,
    ParityError,
    QuantizationError,
    UnknownModelError,
)

ARGV = ["--model", "mobilenet_v3_small_075", "--target", "onnx", "--resolution", "96"]


def fail_with(monkeypatch, exc):
    def export_model(config, on_step=None):
        raise exc

    monkeypatch.setattr(pipeline, "export_model", export_model)


@pytest.mark.parametrize("exc, status", [
    (ParityError("onnx artifact of m differs from PyTorch @96"), EXIT_EXPORT_FAILED),
    (ExportError("torch.export could not trace m: boom"), EXIT_EXPORT_FAILED),
    (UnknownModelError("unknown model 'm'"), EXIT_USAGE),
    (QuantizationError("--quantize int8 is not supported for --target x"), EXIT_USAGE),
    (KeyboardInterrupt(), EXIT_INTERRUPTED),
])
def test_exit_status_tells_failed_export_from_bad_input(monkeypatch, capsys, tmp_path, exc, status):
    fail_with(monkeypatch, exc)
    assert main([*ARGV, "--out", str(tmp_path)]) == status
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err


def test_usage_errors_stay_2(capsys):
    assert main(["--model", "m", "--target", "onnx", "--resolution", "abc"]) == EXIT_USAGE
    assert main(["--target", "onnx"]) == EXIT_USAGE
    assert main(["export", "--bogus"]) == EXIT_USAGE
    capsys.readouterr()


def test_statuses_are_documented_in_help_and_readme(capsys):
    from pathlib import Path

    assert main(["--help"]) == 0
    help_text = capsys.readouterr().out
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for code, meaning in EXIT_STATUSES.items():
        assert f"{code}" in help_text and meaning in help_text
        assert f"| {code} |" in readme, f"exit status {code} is not in the README's table"
