"""Running out of memory, disk or the file-size limit during an export is one line, nothing half-written (issue 24, 10).

The limits are set with ``setrlimit`` inside the export's process after the
heavy imports (the same as ``ulimit -f`` / ``ulimit -v`` in a shell, but aimed
at the export rather than at importing torch).
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap

import pytest

from mobexport.config import ExportConfig
from mobexport.errors import ExportError, ResourceExhaustedError
from mobexport.export import pipeline
from mobexport.export.resources import as_resource_error, exhausted_resource

MODEL = "mobilenet_v3_small_075"
LIMITED_EXPORT = textwrap.dedent('''
    import resource, sys
    import onnx, onnxruntime, onnxscript, torch
    from mobexport.cli import main
    from mobexport.export import pipeline

    def address_space():
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize"))

    kind, amount = sys.argv[1], int(sys.argv[2])
    if kind == "fsize":
        resource.setrlimit(resource.RLIMIT_FSIZE, (amount, amount))
    else:
        limit = address_space() + amount
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    sys.exit(main(sys.argv[3:]))
''')


@pytest.mark.parametrize("exc, resource", [
    (OSError(errno.ENOSPC, "No space left on device"), "disk space"),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), "disk quota"),
    (OSError(errno.EFBIG, "File too large"), "the file-size limit"),
    (MemoryError(), "memory"),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"), "memory"),
    (RuntimeError("std::bad_alloc"), "memory"),
])
def test_each_kind_of_exhaustion_is_recognised(exc, resource):
    assert exhausted_resource(exc) == resource
    try:
        raise ExportError("ONNX export failed: wrapped") from exc
    except ExportError as wrapped:
        assert exhausted_resource(wrapped) == resource


def test_other_failures_are_not_exhaustion():
    assert as_resource_error(OSError(errno.EACCES, "Permission denied"), "x") is None
    assert as_resource_error(ValueError("bad"), "x") is None


def test_disk_full_inside_staging_is_one_error_and_nothing_is_left(tmp_path, monkeypatch):
    """Fault injection at the step after staging starts: the staging directory must be gone."""
    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    from mobexport.export.targets.onnx.target import OnnxTarget

    monkeypatch.setattr(OnnxTarget, "prepare", disk_full)
    config = ExportConfig(model=MODEL, target="onnx", resolution=96, dynamic=False, passes="none",
                          out_dir=tmp_path / "out")
    with pytest.raises(ResourceExhaustedError, match="ran out of disk space"):
        pipeline.export_model(config)
    assert [p.name for p in (tmp_path / "out" / MODEL).iterdir()] == []


def run_limited(tmp_path, kind: str, amount: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", LIMITED_EXPORT, kind, str(amount), "--model", MODEL, "--target", "onnx",
         "--resolution", "96", "--static", "--passes", "none", "--parity-samples", "1", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "300"})


def assert_one_line(done: subprocess.CompletedProcess, fragment: str, tmp_path) -> None:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 1 and fragment in lines[0], done.stderr
    parent = tmp_path / "out" / MODEL
    assert not parent.exists() or list(parent.iterdir()) == [], "something half-written was left"


def test_a_file_size_limit_is_one_line(tmp_path):
    """Old code: 'ONNX export failed: [Errno 27] File too large', not naming the limit."""
    assert_one_line(run_limited(tmp_path, "fsize", 1 << 20), "ran out of the file-size limit", tmp_path)


@pytest.mark.slow
def test_an_address_space_limit_is_one_line(tmp_path):
    """Old code: a MemoryError traceback, once followed by a second one from an exit hook."""
    assert_one_line(run_limited(tmp_path, "as", 40 << 20), "ran out of memory", tmp_path)
