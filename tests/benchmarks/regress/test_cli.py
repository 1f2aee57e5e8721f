"""``mobexport regress`` end to end on synthetic results: exit codes, reports, plots, summaries."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from mobexport.cli import main

BASE_KW = dict(seed=0)


def run(capsys, *argv):
    status = main(["regress", *map(str, argv)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def one_line_error(status, err, *fragments):
    assert status == 2, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def baseline(make_results, tmp_path, capsys):
    path = tmp_path / "baselines" / "ci_local_cpu.json"
    status, out, err = run(capsys, "--update-baseline", "--results", make_results("base", **BASE_KW), "--baseline", path)
    assert status == 0, err
    assert "9 points" in out.replace("\n", " ")
    return path


def test_unchanged_run_passes_with_table_plot_and_markdown(baseline, make_results, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    results = make_results("cur", seed=1)
    md = tmp_path / "report.md"
    status, out, err = run(capsys, "--baseline", baseline, "--results", results, "--markdown", md)
    assert status == 0, err
    assert "no regression" in out
    plots = list(results.parent.glob(f"regress-{results.stem}-*.png"))  # one name per run, said in the output
    assert len(plots) == 1 and plots[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"plot: {plots[0]}" in out.replace("\n", "")
    text = md.read_text()
    assert text.startswith("## mobexport regression check: ✅ no regression")
    assert text.count("| ✅ unchanged |") == 6 and text.count("| 📏 reference |") == 3


def test_injected_slowdown_fails_the_run_and_names_the_point(baseline, make_results, tmp_path, capsys, monkeypatch):
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    results = make_results("cur", seed=1, machine=1.6, slowdown={("mobile_former_294m", 160): 1.3})
    verdicts = tmp_path / "verdicts.json"
    plot = tmp_path / "plots" / "check.png"
    status, out, err = run(capsys, "--baseline", baseline, "--results", results, "--json", verdicts, "--plot", plot)
    assert status == 1, err
    assert "1 regression" in out and "mobile_former_294m/onnx@160" in out
    text = summary.read_text()
    assert text.startswith("earlier step\n## mobexport regression check: ❌ 1 regression")  # appended, not replaced
    regressed = [line for line in text.splitlines() if line.startswith("| ❌ regressed")]
    assert len(regressed) == 1 and "`mobile_former_294m` | onnx | 160 |" in regressed[0]
    data = json.loads(verdicts.read_text())
    assert data["exit_status"] == 1 and data["machine_factor"] == pytest.approx(1.6, rel=0.06)
    assert [p["case"]["resolution"] for p in data["points"] if p["status"] == "regressed"] == [160]
    assert plot.is_file() and not list(results.parent.glob("regress*.png"))


def test_twice_slower_machine_passes_relative_and_fails_absolute(baseline, make_results, capsys):
    results = make_results("slow", seed=3, machine=2.0)
    status, out, _ = run(capsys, "--baseline", baseline, "--results", results, "--no-plot")
    assert status == 0 and "2.0" in out
    status, out, _ = run(capsys, "--baseline", baseline, "--results", results, "--no-plot", "--mode", "absolute")
    assert status == 1 and "9 regressions" in out


def test_min_effect_option_accepts_percentages(baseline, make_results, capsys):
    results = make_results("cur", seed=1, slowdown={("mobile_former_52m", 224): 1.15})
    assert run(capsys, "--baseline", baseline, "--results", results, "--no-plot")[0] == 1
    assert run(capsys, "--baseline", baseline, "--results", results, "--no-plot", "--min-effect", "20%")[0] == 0
    assert run(capsys, "--baseline", baseline, "--results", results, "--no-plot", "--min-effect", "0.2")[0] == 0


def test_macs_change_is_reported_exactly(baseline, make_results, tmp_path, capsys):
    results = make_results("cur", seed=0, macs_scale={("mobile_former_52m", 224): 1.5})
    md = tmp_path / "r.md"
    status, out, _ = run(capsys, "--baseline", baseline, "--results", results, "--no-plot", "--markdown", md)
    assert status == 0
    assert "MACs 52,000,000 → 78,000,000 (+50.00%)" in out
    assert "- `mobile_former_52m/onnx@224`: MACs 52,000,000 → 78,000,000 (+50.00%)" in md.read_text()


def test_missing_files_are_exit_2(baseline, make_results, tmp_path, capsys):
    status, _, err = run(capsys, "--baseline", baseline, "--results", tmp_path / "nope.jsonl")
    one_line_error(status, err, "does not exist")
    status, _, err = run(capsys, "--baseline", tmp_path / "nope.json", "--results", make_results("cur", seed=1))
    one_line_error(status, err, "baseline", "does not exist")
    status, _, err = run(capsys, "--results", make_results("cur", seed=1))
    one_line_error(status, err, "both --results and --baseline")


def test_schema_mismatches_are_exit_2(baseline, make_results, tmp_path, capsys):
    results = make_results("cur", seed=1)
    lines = results.read_text().splitlines()
    record = json.loads(lines[0])
    record["schema_version"] = 99
    results.write_text("\n".join([json.dumps(record), *lines[1:]]) + "\n")
    status, _, err = run(capsys, "--baseline", baseline, "--results", results)
    one_line_error(status, err, "schema_version must be 1, not 99")

    data = json.loads(baseline.read_text())
    data["schema_version"] = 2
    old = tmp_path / "old.json"
    old.write_text(json.dumps(data))
    status, _, err = run(capsys, "--baseline", old, "--results", make_results("ok", seed=1))
    one_line_error(status, err, "schema_version must be 1, not 2")


def test_no_overlap_and_missing_reference_are_exit_2(baseline, make_results, capsys):
    elsewhere = make_results("other", seed=1, resolutions=(256, 288))
    status, _, err = run(capsys, "--baseline", baseline, "--results", elsewhere)
    one_line_error(status, err, "no case of the results is in the baseline")

    no_ref = make_results("noref", seed=1, models=["mobile_former_52m", "mobile_former_294m"])
    status, _, err = run(capsys, "--baseline", baseline, "--results", no_ref)
    one_line_error(status, err, "mobilenet_v3_large_100", "--mode absolute")
    assert run(capsys, "--baseline", baseline, "--results", no_ref, "--mode", "absolute", "--no-plot")[0] == 0


def test_bad_option_values_are_exit_2(baseline, make_results, capsys):
    results = make_results("cur", seed=1)
    status, _, err = run(capsys, "--baseline", baseline, "--results", results, "--min-effect", "lots")
    one_line_error(status, err, "'lots' is not a fraction")
    status, _, err = run(capsys, "--baseline", baseline, "--results", results, "--min-effect=-5%")
    one_line_error(status, err, "--min-effect", "between 0 and 1")


def test_update_baseline_overwrites_atomically_and_warns_without_reference(make_results, tmp_path, capsys):
    path = tmp_path / "b.json"
    status, out, _ = run(capsys, "--update-baseline", "--results",
                         make_results("a", seed=0, models=["mobile_former_52m"]), "--baseline", path)
    assert status == 0 and "warning" in out and "mobilenet_v3_large_100" in out
    first = json.loads(path.read_text())
    assert run(capsys, "--update-baseline", "--results", make_results("b", seed=1), "--baseline", path)[0] == 0
    second = json.loads(path.read_text())
    assert len(first["points"]) == 3 and len(second["points"]) == 9
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_history_orders_runs_by_time_and_writes_png_and_markdown(make_results, tmp_path, capsys):
    history = tmp_path / "history"
    # Directory names sort opposite to measurement time: the order must come from the records.
    for day, name in ((1, "z"), (2, "m"), (3, "a")):
        make_results(f"history/{name}", seed=day, start=datetime(2026, 11, day, tzinfo=timezone.utc),
                     slowdown={("mobile_former_294m", 224): 1 + 0.2 * (day - 1)})
    md = tmp_path / "trend.md"
    status, out, err = run(capsys, "--history", history, "--markdown", md)
    assert status == 0, err
    assert (history / "history.png").read_bytes()[:4] == b"\x89PNG"
    text = md.read_text()
    runs = [line for line in text.splitlines() if line[:3] in ("1. ", "2. ", "3. ")]
    assert [r.split("/")[-2] for r in runs] == ["z", "m", "a"]
    row = next(line for line in text.splitlines() if line.startswith("| `mobile_former_294m` | onnx | 224 |"))
    change = float(row.rstrip(" |").split("|")[-1].strip().rstrip("%"))
    assert 30 < change < 50  # +40% injected over the series
    steady = next(line for line in text.splitlines() if line.startswith("| `mobile_former_52m` | onnx | 160 |"))
    assert abs(float(steady.rstrip(" |").split("|")[-1].strip().rstrip("%"))) < 8


def test_history_errors_are_exit_2(make_results, tmp_path, capsys):
    status, _, err = run(capsys, "--history", tmp_path / "none")
    one_line_error(status, err, "does not exist")
    (tmp_path / "empty").mkdir()
    status, _, err = run(capsys, "--history", tmp_path / "empty")
    one_line_error(status, err, "no results files")
    make_results("h/one", seed=1, models=["mobile_former_52m"])
    status, _, err = run(capsys, "--history", tmp_path / "h")
    one_line_error(status, err, "without the reference")
    assert run(capsys, "--history", tmp_path / "h", "--mode", "absolute", "--no-plot")[0] == 0


def test_absolute_mode_warns_when_the_device_differs(baseline, make_results, capsys):
    results = make_results("cur", seed=1)
    results.write_text(results.read_text().replace("Synthetic CPU @ 3 GHz", "Another CPU @ 1 GHz"))
    status, out, _ = run(capsys, "--baseline", baseline, "--results", results, "--no-plot", "--mode", "absolute")
    assert status == 0 and "absolute mode across different device fingerprints" in out.replace("\n", " ")
    status, out, _ = run(capsys, "--baseline", baseline, "--results", results, "--no-plot")
    assert status == 0 and "warning" not in out
    same = make_results("same", seed=2)
    assert "warning" not in run(capsys, "--baseline", baseline, "--results", same, "--no-plot", "--mode", "absolute")[1]


def test_unwritable_report_paths_are_exit_2(baseline, make_results, tmp_path, capsys):
    results = make_results("cur", seed=1)
    status, _, err = run(capsys, "--baseline", baseline, "--results", results, "--no-plot",
                         "--markdown", tmp_path / "no-such-dir" / "r.md")
    one_line_error(status, err, "cannot write", "--markdown")
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    status, _, err = run(capsys, "--baseline", baseline, "--results", results, "--plot", blocker / "p.png")
    one_line_error(status, err, "cannot write plot")


def test_baseline_from_several_runs_reports_its_detectable_change(make_results, tmp_path, capsys):
    runs = [make_results(f"b{i}", seed=i, drift=0.3) for i in range(4)]
    path = tmp_path / "multi.json"
    status, out, _ = run(capsys, "--update-baseline", "--results", *runs, "--baseline", path)
    assert status == 0 and "from 4 runs" in out
    md = tmp_path / "r.md"
    status, out, _ = run(capsys, "--baseline", path, "--results", make_results("cur", seed=9, drift=0.3),
                         "--no-plot", "--markdown", md)
    assert status == 0
    text = md.read_text()
    assert "prediction interval from the run-to-run variation of the baseline's 4 runs" in text
    assert "too noisy to catch the minimum effect" in text  # drift 0.3: nothing below ~2x stands out
    status, _, err = run(capsys, "--baseline", path, "--results", runs[0], runs[1])
    one_line_error(status, err, "compare one results file at a time")


def test_on_other_device_warn_reports_a_slowdown_without_failing(baseline, make_results, capsys):
    slowed = {("mobile_former_294m", 160): 1.3}
    results = make_results("other", seed=1, slowdown=slowed)
    results.write_text(results.read_text().replace("Synthetic CPU @ 3 GHz", "Another CPU @ 1 GHz"))
    status, out, _ = run(capsys, "--baseline", baseline, "--results", results, "--no-plot", "--on-other-device", "warn")
    flat = out.replace("\n", " ")
    assert status == 0 and "mobile_former_294m/onnx@160" in flat and "measured on another device" in flat
    # Judged by default, and on the same device 'warn' changes nothing.
    assert run(capsys, "--baseline", baseline, "--results", results, "--no-plot")[0] == 1
    same = make_results("same", seed=1, slowdown=slowed)
    assert run(capsys, "--baseline", baseline, "--results", same, "--no-plot", "--on-other-device", "warn")[0] == 1
