"""Bad option values are refused in one line (exit 2) before any work: before torch is even imported.

Issue 24 items 11, 12, 13, 17, 21: ``--resolution 0`` was taken as "the default",
``--num-classes 0/-5`` ended in tracebacks, ``--tolerance -1/nan`` and
``bench --case-timeout -5`` were accepted, a missing ``--calib`` was ignored,
an unwritable ``--out`` was refused only after tracing, ``bench --targets
coreml`` on the local device only after importing the converters, and argparse
errors printed a 9-16 line usage block.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mobexport.config import ExportConfig
from mobexport.errors import InvalidOptionError

SMALL = "mobilenet_v3_small_075"
EXPORT = ("--model", SMALL, "--target", "onnx")
SWEEP = ("bench", "--models", SMALL, "--targets", "onnx", "--resolutions", "96")


def refuse(tmp_path, *argv):
    """Run ``mobexport ARGV`` in a fresh interpreter; (status, stderr, whether torch got imported)."""
    code = ("import sys, json; from mobexport.cli import main; rc = main(sys.argv[1:]); "
            "print(json.dumps({'rc': rc, 'torch': 'torch' in sys.modules}))")
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "COLUMNS": "200"})
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["rc"], done.stderr, result["torch"]


# train-fixture's defaults live beside its training code, which imports torch: it refuses in one line,
# but after that import.
IMPORTS_TORCH_TO_PARSE = {"train-fixture"}


def assert_refused_early(tmp_path, argv, *fragments):
    status, err, imported_torch = refuse(tmp_path, *argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2, err
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err
    assert "--help" in lines[0]  # points to the help instead of printing a usage block
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    if argv[0] not in IMPORTS_TORCH_TO_PARSE:
        assert not imported_torch, "refused only after importing torch"


@pytest.mark.parametrize("argv, fragments", [
    ((*EXPORT, "--resolution", "0"), ["--resolution", "positive integer"]),
    ((*EXPORT, "--resolution", "-32"), ["--resolution", "positive integer"]),
    ((*EXPORT, "--num-classes", "0"), ["--num-classes", "positive integer"]),
    ((*EXPORT, "--num-classes", "-5"), ["--num-classes", "positive integer"]),
    ((*EXPORT, "--tolerance", "-1"), ["--tolerance", ">= 0"]),
    ((*EXPORT, "--tolerance", "nan"), ["--tolerance", "nan"]),
    ((*EXPORT, "--tolerance", "inf"), ["--tolerance", "finite"]),
    ((*EXPORT, "--parity-samples", "0"), ["--parity-samples"]),
    ((*EXPORT, "--calib-samples", "0"), ["--calib-samples"]),
    ((*EXPORT, "--calib", "no-such-dir"), ["--calib", "does not exist"]),
    ((*EXPORT, "--checkpoint", "no-such.pth"), ["--checkpoint", "does not exist"]),
    ((*EXPORT, "--class-labels", "no-such.txt"), ["--class-labels", "does not exist"]),
    ((*EXPORT, "--quantize", "int3"), ["--quantize", "int3"]),
    (("--model", SMALL), ["--target"]),
    ((*SWEEP, "--case-timeout", "-5"), ["--case-timeout"]),
    ((*SWEEP, "--case-timeout", "nan"), ["--case-timeout"]),
    ((*SWEEP, "--resolutions", "0"), ["--resolutions"]),
    ((*SWEEP, "--threads", "-1"), ["--threads"]),
    ((*SWEEP, "--batch", "0"), ["--batch"]),
    ((*SWEEP, "--warmup-time", "-1"), ["--warmup-time"]),
    ((*SWEEP, "--max-iters", "0"), ["--max-iters"]),
    (("regress", "--resamples", "0"), ["--resamples"]),
    (("regress", "--confidence", "2"), ["--confidence"]),
    (("train-fixture", "--epochs", "0"), ["--epochs"]),
    (("train-fixture", "--resolution", "0"), ["--resolution"]),
    (("profile", "--runs", "0"), ["--runs"]),
    (("profile", "--warmup", "-1"), ["--warmup"]),
    (("devices", "--adb", "no-such-adb"), ["--adb", "does not exist"]),
    (("list", "--no-such-option"), ["--no-such-option"]),
])
def test_bad_values_are_refused_in_one_line_before_torch(tmp_path, argv, fragments):
    assert_refused_early(tmp_path, argv, *fragments)


def test_unwritable_out_is_refused_before_tracing(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert_refused_early(tmp_path, (*EXPORT, "--out", str(blocker / "out")), "--out", "cannot write")
    assert_refused_early(tmp_path, (*SWEEP, "--out", str(blocker / "out")), "--out", "cannot write")
    assert blocker.read_text() == "not a directory"


def test_bench_coreml_on_the_local_device_is_refused_before_heavy_imports(tmp_path):
    status, err, imported_torch = refuse(tmp_path, "bench", "--models", SMALL, "--targets", "coreml",
                                         "--resolutions", "96", "--device", "local", "--out", str(tmp_path / "o"))
    assert status == 2 and err.count("\n") == 1, err
    assert "coreml artifacts cannot run on device 'local'" in err and "--device macos" in err
    assert not imported_torch
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("field, value", [
    ("resolution", 0), ("resolution", -224), ("num_classes", 0), ("num_classes", -5), ("tolerance", -1.0),
    ("tolerance", float("nan")), ("tolerance", float("inf")), ("parity_samples", 0), ("calib_samples", 0),
    ("calib_dir", "no-such-dir"),
])
def test_export_config_refuses_the_same_values_for_api_callers(field, value):
    """The Python API (and bench, which builds configs) gets the same checks as the command line."""
    with pytest.raises(InvalidOptionError):
        ExportConfig(model=SMALL, target="onnx", **{field: value})


def test_calib_must_exist_even_without_quantize(tmp_path):
    """It was silently ignored when --quantize was not given."""
    assert_refused_early(tmp_path, (*EXPORT, "--calib", str(tmp_path / "missing")), "--calib")
