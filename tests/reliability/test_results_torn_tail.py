"""Issue 24 item 4: a results.jsonl whose last line was torn by a crash mid-write.

Like a write-ahead log's reader: the torn trailing record is ignored and
reported once, resume goes on, the next record starts on a line of its own;
a bad line anywhere else is corruption, refused with its line number.
"""

from __future__ import annotations

import logging

import pytest
from rich.console import Console

from mobexport.benchmarks.sweep.plan import SweepPlan
from mobexport.benchmarks.results.records import append_record, load_results, read_records
from mobexport.benchmarks.sweep.run import run_sweep
from mobexport.devices.measure import MeasurePolicy
from mobexport.errors import BenchmarkError

from .sweep_helpers import InstantDevice, instant_prepare, json_lines, record, write_results

QUICK = MeasurePolicy(min_time_s=0.01, min_iters=1, max_iters=5, warmup_time_s=0.0, min_warmup=0)


def torn(text: str) -> str:
    """A record line cut in the middle, with no newline: what a crash during write() leaves."""
    return text[: len(text) // 2]


def test_a_torn_last_line_is_ignored_and_reported(tmp_path, caplog):
    good = [record(resolution=160), record(resolution=192)]
    path = write_results(tmp_path / "results.jsonl", good, tail=torn(record(resolution=224).to_json()))
    with caplog.at_level(logging.WARNING):
        records = read_records(path)
    assert [r.case.resolution for r in records] == [160, 192]
    assert "ignored a torn last line (line 3" in caplog.text
    _, tail = load_results(path)
    assert tail.line == 3 and tail.offset == len("".join(r.to_json() + "\n" for r in good))


def test_resume_after_a_torn_line_measures_on_and_starts_a_fresh_line(tmp_path):
    out = tmp_path / "bench"
    plan = SweepPlan(models=["tiny"], targets=["onnx"], resolutions=[160, 192, 224], seed=None)
    first = InstantDevice()
    run_sweep(SweepPlan(models=["tiny"], targets=["onnx"], resolutions=[160, 192], seed=None), first, out, QUICK,
              console=Console(file=open(tmp_path / "log1", "w")), prepare_case=instant_prepare)
    results = out / "results.jsonl"
    finished = results.read_text()
    results.write_text(finished + torn(record("tiny", 224).to_json()))   # killed while appending the third

    log = tmp_path / "log2"
    device = InstantDevice()
    outcome = run_sweep(plan, device, out, QUICK, console=Console(file=open(log, "w"), width=300),
                        prepare_case=instant_prepare)
    assert outcome.skipped == 2 and [j.resolution for j in device.jobs] == [224]
    assert results.read_text().startswith(finished)                    # nothing finished was lost
    assert [r["case"]["resolution"] for r in json_lines(results)] == [160, 192, 224]   # every line is whole
    assert log.read_text().count("ignored a torn last line (line 3") == 1

    again = tmp_path / "log3"
    outcome = run_sweep(plan, InstantDevice(), out, QUICK, console=Console(file=open(again, "w")),
                        prepare_case=instant_prepare)
    assert outcome.skipped == 3 and "torn" not in again.read_text()      # reported once, not on every run


def test_an_append_after_a_line_without_newline_starts_a_new_line(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text(record(resolution=160).to_json())                    # complete JSON, newline lost
    append_record(path, record(resolution=192))
    assert [r.case.resolution for r in read_records(path)] == [160, 192]


@pytest.mark.parametrize("bad_line", ['{"case": {"model"', "not json at all", "[1, 2, 3]"])
def test_corruption_before_the_last_line_is_refused_with_its_line_number(tmp_path, bad_line):
    lines = [record(resolution=160).to_json(), bad_line, record(resolution=192).to_json()]
    path = tmp_path / "results.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(BenchmarkError, match=r"results.jsonl:2"):
        read_records(path)


def test_a_bad_last_line_that_ends_with_a_newline_is_corruption_not_a_torn_write(tmp_path):
    path = write_results(tmp_path / "results.jsonl", [record()], tail='{"case": \n')
    with pytest.raises(BenchmarkError, match=r"results.jsonl:2 is not valid JSON"):
        read_records(path)
