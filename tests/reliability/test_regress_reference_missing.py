"""Issue 23 item 16 (regress part): when the reference model is not in the results, say which one and how
to add it, instead of a bare failure or an empty "× MobileNetV3" column."""

from __future__ import annotations

from .sweep_helpers import OTHER, REFERENCE, assert_one_line_error, run_cli, sweep_records, write_baseline_file, \
    write_results


def test_compare_names_the_missing_reference_model_and_how_to_add_it(tmp_path, capsys):
    baseline = write_baseline_file(tmp_path / "base.json")
    results = write_results(tmp_path / "results.jsonl", sweep_records(seed=1, models=(OTHER,)))
    status, _, err = run_cli(capsys, "regress", "--baseline", baseline, "--results", results, "--no-plot")
    line = assert_one_line_error(status, err, f"reference model {REFERENCE} is not in the results",
                                 f"it has {OTHER}")
    assert f"mobexport bench --models {OTHER},{REFERENCE}" in line and "--mode absolute" in line


def test_a_baseline_without_the_reference_is_named_too(tmp_path, capsys):
    baseline = write_baseline_file(tmp_path / "base.json", sweep_records(seed=0, models=(OTHER,)))
    results = write_results(tmp_path / "results.jsonl", sweep_records(seed=1))
    status, _, err = run_cli(capsys, "regress", "--baseline", baseline, "--results", results, "--no-plot")
    assert_one_line_error(status, err, f"reference model {REFERENCE} is not in the baseline",
                          "update the baseline from those results")


def test_update_baseline_warns_how_to_add_the_reference(tmp_path, capsys):
    results = write_results(tmp_path / "results.jsonl", sweep_records(seed=1, models=(OTHER,)))
    status, out, err = run_cli(capsys, "regress", "--update-baseline", "--results", results,
                               "--baseline", tmp_path / "b.json")
    assert status == 0, err
    text = " ".join(out.split())
    assert f"the reference model {REFERENCE} is not in it" in text and f"--models {OTHER},{REFERENCE}" in text
