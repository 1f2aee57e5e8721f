"""``mobexport regress --metric instructions`` on hand-written instruction-count results (no valgrind needed)."""

from __future__ import annotations

import json

import pytest

from mobexport.benchmarks.regress.instruction_baseline import read_instruction_baseline
from mobexport.benchmarks.results.records import BenchRecord, CaseKey, append_record, read_records
from mobexport.cli import main

MODELS = ("mobile_former_52m", "mobile_former_294m", "mobilenet_v3_large_100")
RESOLUTIONS = (160, 192, 224)
VERSIONS = {"valgrind": "3.19.0", "onnxruntime": "1.32.0"}
# Per-inference counts as callgrind gives them: a few thousand apart from glibc's address-dependent paths.
JITTER = (0, 4_113, -2_870)


def _counts(model: str, resolution: int) -> int:
    return (100 + 50 * MODELS.index(model)) * resolution * 1_000


def write_results(path, change=None, versions=VERSIONS, failed=()):
    """Results of the CI sweep as 'mobexport bench --metric instructions' writes them; ``change`` scales points."""
    change = change or {}
    path.parent.mkdir(parents=True, exist_ok=True)
    for model in MODELS:
        for resolution in RESOLUTIONS:
            case = CaseKey(model=model, target="onnx", resolution=resolution, threads=1)
            if (model, resolution) in failed:
                append_record(path, BenchRecord(case=case, status="failed", error="RuntimeError: boom"))
                continue
            base = round(_counts(model, resolution) * change.get((model, resolution), 1.0))
            samples = [base + j for j in JITTER]
            count = {"median": sorted(samples)[1], "samples": samples, "startup": 650_000_000, "warmup": 1,
                     "counter": "callgrind", "spread": (max(samples) - min(samples)) / base,
                     "tool_versions": dict(versions)}
            append_record(path, BenchRecord(case=case, instructions=count, macs=resolution * 1000, params=5,
                                            conditions={"metric": "instructions"}))
    return path


def run(capsys, *argv):
    status = main(["regress", *map(str, argv)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def one_line_error(status, err, *fragments):
    assert status == 2, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def baseline(tmp_path, capsys):
    path = tmp_path / "instructions.json"
    status, out, err = run(capsys, "--metric", "instructions", "--update-baseline", "--results",
                           write_results(tmp_path / "b1" / "results.jsonl"),
                           write_results(tmp_path / "b2" / "results.jsonl"), "--baseline", path)
    assert status == 0, err
    assert "9 points from 2 run(s)" in out.replace("\n", " ")
    return path


def test_the_baseline_records_its_metric_and_tool_versions(baseline):
    data = json.loads(baseline.read_text())
    assert data["metric"] == "instructions" and data["tool_versions"] == VERSIONS
    assert len(data["points"][0]["runs"]) == 2
    loaded = read_instruction_baseline(baseline)
    assert len(loaded.points) == 9


def test_an_unchanged_run_passes(baseline, tmp_path, capsys):
    results = write_results(tmp_path / "cur" / "results.jsonl")
    verdicts = tmp_path / "verdicts.json"
    status, out, err = run(capsys, "--metric", "instructions", "--baseline", baseline, "--results", results,
                           "--json", verdicts)
    assert status == 0, out + err
    assert "no instruction-count regression" in out
    statuses = [p["status"] for p in json.loads(verdicts.read_text())["points"]]
    assert statuses == ["unchanged"] * 9


def test_a_ten_percent_increase_is_flagged_at_exactly_its_point(baseline, tmp_path, capsys):
    results = write_results(tmp_path / "cur" / "results.jsonl", change={("mobile_former_294m", 192): 1.10})
    verdicts, md = tmp_path / "verdicts.json", tmp_path / "report.md"
    status, out, err = run(capsys, "--metric", "instructions", "--baseline", baseline, "--results", results,
                           "--json", verdicts, "--markdown", md)
    assert status == 1, out + err
    points = json.loads(verdicts.read_text())["points"]
    flagged = [(p["case"]["model"], p["case"]["resolution"]) for p in points if p["status"] == "regressed"]
    assert flagged == [("mobile_former_294m", 192)]
    assert [p["status"] for p in points if p["status"] != "regressed"] == ["unchanged"] * 8
    assert abs(next(p["ratio"] for p in points if p["status"] == "regressed") - 1.10) < 0.001
    assert "| ❌ regressed | mobile_former_294m/onnx@192 |" in md.read_text()


def test_a_change_below_the_threshold_passes_and_a_decrease_is_an_improvement(baseline, tmp_path, capsys):
    results = write_results(tmp_path / "cur" / "results.jsonl",
                            change={("mobile_former_52m", 160): 1.01, ("mobile_former_52m", 224): 0.90})
    verdicts = tmp_path / "verdicts.json"
    status, out, err = run(capsys, "--metric", "instructions", "--baseline", baseline, "--results", results,
                           "--json", verdicts)
    assert status == 0, out + err
    by_point = {(p["case"]["model"], p["case"]["resolution"]): p["status"]
                for p in json.loads(verdicts.read_text())["points"]}
    assert by_point[("mobile_former_52m", 160)] == "unchanged"
    assert by_point[("mobile_former_52m", 224)] == "improved"


def test_a_runtime_upgrade_is_reported_as_such_not_as_a_regression(baseline, tmp_path, capsys):
    results = write_results(tmp_path / "cur" / "results.jsonl", change={("mobile_former_294m", 192): 1.30},
                            versions={"valgrind": "3.19.0", "onnxruntime": "1.33.0"})
    verdicts = tmp_path / "verdicts.json"
    status, out, err = run(capsys, "--metric", "instructions", "--baseline", baseline, "--results", results,
                           "--json", verdicts)
    assert status == 0, out + err
    report = json.loads(verdicts.read_text())
    assert {p["status"] for p in report["points"]} == {"runtime changed"}
    assert report["tool_changes"] == {"onnxruntime": ["1.32.0", "1.33.0"]}
    assert "onnxruntime 1.32.0 → 1.33.0" in out


def test_a_case_that_fails_now_fails_the_check(baseline, tmp_path, capsys):
    results = write_results(tmp_path / "cur" / "results.jsonl", failed={("mobile_former_52m", 192)})
    status, out, err = run(capsys, "--metric", "instructions", "--baseline", baseline, "--results", results)
    assert status == 1, out + err
    assert "failed" in out


def test_a_latency_baseline_is_refused_by_the_instruction_check(tmp_path, capsys, make_results):
    latency = tmp_path / "latency.json"
    status, _, err = run(capsys, "--update-baseline", "--results", make_results("base", seed=0), "--baseline", latency)
    assert status == 0, err
    results = write_results(tmp_path / "cur" / "results.jsonl")
    status, _, err = run(capsys, "--metric", "instructions", "--baseline", latency, "--results", results)
    one_line_error(status, err, "was made with the metric 'latency', not instructions", "--metric latency")


def test_an_instruction_baseline_is_refused_by_the_latency_check(baseline, capsys, make_results):
    status, _, err = run(capsys, "--baseline", baseline, "--results", make_results("cur", seed=1))
    one_line_error(status, err, "was made with the metric 'instructions', not latency", "--metric instructions")


def test_results_of_the_other_metric_are_refused(baseline, tmp_path, capsys, make_results):
    status, _, err = run(capsys, "--metric", "instructions", "--baseline", baseline, "--results",
                         make_results("cur", seed=1))
    one_line_error(status, err, "holds latency measurements", "--metric latency")


def test_instruction_records_round_trip_through_the_record_schema(tmp_path):
    path = write_results(tmp_path / "results.jsonl")
    records = read_records(path)
    assert records[0].instructions["median"] > 0 and records[0].samples_ms == []


def test_an_ok_record_with_neither_samples_nor_counts_is_refused(tmp_path):
    from mobexport.errors import BenchmarkError

    path = tmp_path / "results.jsonl"
    append_record(path, BenchRecord(case=CaseKey(model="m", target="onnx", resolution=96)))
    with pytest.raises(BenchmarkError, match="samples_ms must have at least 1 item"):
        read_records(path)


@pytest.mark.parametrize("extra", [["--history", "."], ["--paired", "base-out", "--results", "r.jsonl"]])
def test_latency_only_modes_refuse_the_instruction_metric(extra, capsys):
    status, _, err = run(capsys, "--metric", "instructions", *extra)
    one_line_error(status, err, "measures latency, not --metric instructions")
