"""Issue 24 item 15: malformed baselines and results give one line and exit 2 through one schema treatment
(jsonschema, with the field path), never a traceback."""

from __future__ import annotations

import json

import pytest

from .sweep_helpers import REFERENCE, assert_one_line_error, run_cli, sweep_records, write_baseline_file, \
    write_results


@pytest.fixture
def files(tmp_path):
    return (write_results(tmp_path / "results.jsonl", sweep_records(seed=1)),
            write_baseline_file(tmp_path / "base.json"))


def compare(capsys, results, baseline):
    return run_cli(capsys, "regress", "--baseline", baseline, "--results", results, "--no-plot")


def edit_baseline(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def reference_point(data):
    return next(p for p in data["points"] if p["case"]["model"] == REFERENCE)


@pytest.mark.parametrize("change, fragments", [
    (lambda d: reference_point(d)["runs"][0]["samples_ms"].__setitem__(0, float("inf")),
     ["Infinity is not a finite number"]),
    (lambda d: reference_point(d)["runs"][0]["samples_ms"].__setitem__(0, float("nan")),
     ["NaN is not a finite number"]),
    (lambda d: d["points"][0]["runs"][0].update(samples_ms="1.0, 2.0"), ["points[0].runs[0].samples_ms must be array"]),
    (lambda d: d["points"][1]["case"].update(resolution="160"), ["points[1].case.resolution must be an integer or HEIGHTxWIDTH, not '160'"]),
    (lambda d: d.update(provenance="laptop"), ["provenance must be object, not str"]),
    (lambda d: d["points"][0].update(macs=True), ["points[0].macs must be integer or null, not bool"]),
    (lambda d: d["points"][0].update(runs={"run": 0}), ["points[0].runs must be array"]),
])
def test_malformed_baselines(files, capsys, change, fragments):
    results, baseline = files
    edit_baseline(baseline, change)
    status, _, err = compare(capsys, results, baseline)
    assert_one_line_error(status, err, str(baseline), *fragments)


def test_a_baseline_that_is_an_array_or_deeply_nested(files, capsys):
    results, baseline = files
    baseline.write_text("[1, 2, 3]")
    assert_one_line_error(*compare(capsys, results, baseline)[::2], "is not a mobexport baseline")
    baseline.write_text("[" * 100_000 + "]" * 100_000)
    assert_one_line_error(*compare(capsys, results, baseline)[::2], str(baseline))


def test_a_baseline_with_non_utf8_bytes(files, capsys):
    results, baseline = files
    baseline.write_bytes(baseline.read_bytes()[:40] + b"\xff\xfe" + baseline.read_bytes()[40:])
    assert_one_line_error(*compare(capsys, results, baseline)[::2], "is not UTF-8 text")


def edit_line(path, number, change):
    lines = path.read_text().splitlines()
    data = json.loads(lines[number - 1])
    lines[number - 1] = json.dumps(change(data) or data)
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("change, fragments", [
    (lambda d: d.update(samples_ms="1,2,3"), ["results.jsonl:2: samples_ms must be array, not str"]),
    (lambda d: [d], ["results.jsonl:2: the top level must be object, not list"]),
    (lambda d: d["case"].update(resolution="160"), ["results.jsonl:2: case.resolution must be an integer or HEIGHTxWIDTH, not '160'"]),
    (lambda d: d["samples_ms"].__setitem__(3, -1.0), ["results.jsonl:2: samples_ms[3] must be > 0"]),
    (lambda d: d.update(samples_ms=[]), ["results.jsonl:2: samples_ms must have at least 1 item"]),
    (lambda d: d.update(status="maybe"), ["results.jsonl:2: status must be one of 'ok', 'failed'"]),
    (lambda d: d["case"].__delitem__("model"), ["results.jsonl:2: case lacks 'model'"]),
])
def test_malformed_results(files, capsys, change, fragments):
    results, baseline = files
    edit_line(results, 2, change)
    assert_one_line_error(*compare(capsys, results, baseline)[::2], *fragments)


def test_infinity_in_results(files, capsys):
    results, baseline = files
    lines = results.read_text().splitlines()
    lines[0] = lines[0].replace('"samples_ms": [', '"samples_ms": [Infinity, ', 1)
    results.write_text("\n".join(lines) + "\n")
    assert_one_line_error(*compare(capsys, results, baseline)[::2], "results.jsonl:1: Infinity is not a finite")


def test_results_with_non_utf8_bytes(files, capsys):
    results, baseline = files
    results.write_bytes(b"\x80\x81" + results.read_bytes())
    assert_one_line_error(*compare(capsys, results, baseline)[::2], "is not UTF-8 text (byte 0, line 1)")


def test_a_fifo_is_refused_not_waited_on(files, tmp_path, capsys):
    import os

    results, _ = files
    fifo = tmp_path / "base.fifo"
    os.mkfifo(fifo)
    assert_one_line_error(*compare(capsys, results, fifo)[::2], "is not a regular file")
