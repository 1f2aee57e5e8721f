"""Issue 24 item 10 (bench side): a file-size limit (``ulimit -f``) or a full disk while bench writes its
files is one line naming what ran out; nothing bench owns is left half-written.

RLIMIT_FSIZE makes it reproducible without root. Python ignores SIGXFSZ, so an over-limit write fails with
EFBIG, as it would with ENOSPC on a full disk. The limit is set in this process only around the call.
"""

from __future__ import annotations

import errno
import re
import resource
from contextlib import contextmanager

import pytest

from mobexport.benchmarks.sweep import cli as bench_cli
from mobexport.benchmarks.results.records import append_record, read_records
from mobexport.safe_files import write_text_durably
from mobexport.benchmarks.sweep.run import SweepOutcome
from mobexport.devices.device import CaseJob
from mobexport.devices.local import CASE_DIR_PREFIX, LocalDevice
from mobexport.errors import DeviceError, OutputDirError

from .sweep_helpers import assert_one_line_error, record, run_cli, write_results

LIMIT_HIT = "the file-size limit was reached (ulimit -f)"


@contextmanager
def file_size_limit(limit: int):
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def test_an_append_over_the_limit_is_one_line_and_cut_back(tmp_path):
    path = write_results(tmp_path / "results.jsonl", [record(resolution=160)])
    before = path.read_bytes()
    with file_size_limit(len(before) + 100), pytest.raises(OutputDirError, match=re.escape(LIMIT_HIT)):
        append_record(path, record(resolution=192))
    assert path.read_bytes() == before                      # no torn line left by the failed append
    append_record(path, record(resolution=192))
    assert [r.case.resolution for r in read_records(path)] == [160, 192]


def test_a_whole_file_over_the_limit_keeps_the_previous_one(tmp_path):
    path = tmp_path / "summary.md"
    path.write_text("previous summary\n")
    with file_size_limit(1000), pytest.raises(OutputDirError, match="cannot write summary"):
        write_text_durably(path, "x" * 5000, "summary")
    assert path.read_text() == "previous summary\n"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.md"]   # no temporary file left


def test_the_case_job_file_over_the_limit_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    job = CaseJob(kind="pytorch", model="tiny", resolution=32)
    with file_size_limit(10), pytest.raises(DeviceError, match="cannot write the case's job file") as caught:
        LocalDevice().measure(job)
    assert LIMIT_HIT in str(caught.value)
    assert not list(tmp_path.glob(f"{CASE_DIR_PREFIX}*"))


def test_bench_under_a_file_size_limit_ends_in_one_line(tmp_path, capsys, monkeypatch):
    out = tmp_path / "bench"
    results = write_results(out / "results.jsonl", [record("mobilenet_v3_small_075", 128, target="pytorch")])
    before = results.read_bytes()

    def sweep(plan, device, out_dir, policy, console=None, **kwargs):
        append_record(out_dir / "results.jsonl", record("mobilenet_v3_small_075", 96, target="pytorch"))
        return SweepOutcome(out_dir / "results.jsonl")

    monkeypatch.setattr(bench_cli, "run_sweep", sweep)
    with file_size_limit(len(before) + 200):
        status, _, err = run_cli(capsys, "bench", "--models", "mobilenet_v3_small_075", "--targets", "pytorch",
                                 "--resolutions", "96,128", "--out", out)
    assert_one_line_error(status, err, LIMIT_HIT)
    assert results.read_bytes() == before
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_a_full_disk_is_named(tmp_path, monkeypatch):
    import os

    def full(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    path = write_results(tmp_path / "results.jsonl", [record()])
    before = path.read_bytes()
    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OutputDirError, match="the disk is full"):
        append_record(path, record(resolution=192))
    monkeypatch.undo()
    assert path.read_bytes() == before
