"""Issue 24 item 5: ``regress`` never writes over its own inputs or over data it does not own.

An output (--baseline with --update-baseline, --markdown, --json, --plot) that
is one of the inputs, by path, symlink or hard link, is refused before any
work; a --baseline that exists but is not a baseline is refused; replacing a
baseline keeps the previous one in PATH.bak and says so.
"""

from __future__ import annotations

import json
import os

import pytest

from .sweep_helpers import assert_one_line_error, run_cli, sweep_records, write_baseline_file, write_results


@pytest.fixture
def files(tmp_path):
    results = write_results(tmp_path / "run" / "results.jsonl", sweep_records(seed=1))
    baseline = write_baseline_file(tmp_path / "base.json")
    return results, baseline


def snapshot(*paths):
    return {p: p.read_bytes() for p in paths}


def test_update_baseline_onto_its_own_results_is_refused(files, capsys):
    results, _ = files
    before = snapshot(results)
    status, _, err = run_cli(capsys, "regress", "--update-baseline", "--results", results, "--baseline", results)
    assert_one_line_error(status, err, "--baseline", "is one of the inputs", "refusing to overwrite")
    assert snapshot(results) == before


def test_update_baseline_onto_a_hard_link_of_the_results_is_refused(files, tmp_path, capsys):
    results, _ = files
    link = tmp_path / "elsewhere.json"
    os.link(results, link)
    status, _, err = run_cli(capsys, "regress", "--update-baseline", "--results", results, "--baseline", link)
    assert_one_line_error(status, err, "is one of the inputs")
    assert link.read_bytes() == results.read_bytes()


@pytest.mark.parametrize("option, target", [("--markdown", 0), ("--json", 0), ("--markdown", 1), ("--json", 1),
                                            ("--plot", 0), ("--plot", 1)])
def test_a_report_onto_an_input_is_refused(files, capsys, option, target):
    before = snapshot(*files)
    extra = [] if option == "--plot" else ["--no-plot"]
    status, _, err = run_cli(capsys, "regress", "--baseline", files[1], "--results", files[0], *extra,
                             option, files[target])
    assert_one_line_error(status, err, option, "is one of the inputs")
    assert snapshot(*files) == before


def test_a_report_onto_a_symlink_to_an_input_is_refused(files, tmp_path, capsys):
    link = tmp_path / "report.md"
    link.symlink_to(files[0])
    status, _, err = run_cli(capsys, "regress", "--baseline", files[1], "--results", files[0], "--no-plot",
                             "--markdown", link)
    assert_one_line_error(status, err, "is one of the inputs")


def test_a_report_onto_another_results_file_is_refused(files, tmp_path, capsys):
    other = write_results(tmp_path / "other" / "results.jsonl", sweep_records(seed=2))
    before = other.read_bytes()
    status, _, err = run_cli(capsys, "regress", "--baseline", files[1], "--results", files[0], "--no-plot",
                             "--json", other)
    assert_one_line_error(status, err, "holds benchmark results or a baseline")
    assert other.read_bytes() == before


def test_a_file_that_is_not_a_baseline_is_never_replaced(files, tmp_path, capsys):
    precious = tmp_path / "package.json"
    precious.write_text(json.dumps({"name": "my-app", "version": "1.0.0"}))
    before = precious.read_bytes()
    status, _, err = run_cli(capsys, "regress", "--update-baseline", "--results", files[0], "--baseline", precious)
    assert_one_line_error(status, err, "is not a mobexport baseline", "refusing to replace it")
    assert precious.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base.json", "package.json", "run"]


def test_replacing_a_baseline_keeps_the_previous_one_and_says_so(files, capsys):
    results, baseline = files
    previous = baseline.read_bytes()
    status, out, err = run_cli(capsys, "regress", "--update-baseline", "--results", results, "--baseline", baseline)
    assert status == 0, err
    backup = baseline.with_name("base.json.bak")
    assert backup.read_bytes() == previous and baseline.read_bytes() != previous
    assert "replaced the previous baseline (4 points" in out and str(backup) in out.replace("\n", "")


def test_a_new_baseline_replaces_nothing(files, tmp_path, capsys):
    status, out, err = run_cli(capsys, "regress", "--update-baseline", "--results", files[0],
                               "--baseline", tmp_path / "fresh.json")
    assert status == 0, err
    assert "replaced" not in out and not (tmp_path / "fresh.json.bak").exists()
