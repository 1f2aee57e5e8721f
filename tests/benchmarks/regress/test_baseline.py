"""Baselines: made from results, round-trip with their samples, refuse malformed files, write atomically."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from mobexport.benchmarks.regress import baseline as baseline_module
from mobexport.benchmarks.regress.baseline import (
    BASELINE_SCHEMA_VERSION,
    Baseline,
    baseline_from_results,
    read_baseline,
    write_baseline,
)
from mobexport.benchmarks.results.curves import points_from_records
from mobexport.benchmarks.regress.verdict import compare
from mobexport.errors import BenchmarkError, OutputDirError


def test_round_trip_keeps_samples_costs_and_provenance(make_results, tmp_path):
    results = make_results("base", seed=0)
    path = tmp_path / "baselines" / "ci.json"
    written = baseline_from_results(results, path, command=["mobexport", "regress", "--update-baseline"])
    loaded = read_baseline(path)

    assert loaded.name == "ci"
    assert set(loaded.points) == set(written.points) and len(loaded.points) == 9
    for case, point in written.points.items():
        again = loaded.points[case]
        np.testing.assert_allclose(again.samples_ms, point.samples_ms, atol=1e-4)  # rounded to 0.1 us
        assert (again.macs, again.params) == (point.macs, point.params)
    prov = loaded.provenance
    assert prov["devices"] == [{"cpu": "Synthetic CPU @ 3 GHz", "cores": 2, "os": "Linux"}]
    assert prov["tool_versions"] == [{"mobexport": "0.1.0", "onnxruntime": "1.20.0"}]
    assert prov["measured_from"] == "2026-11-01T12:00:00+00:00"
    assert prov["results_file"] == str(results) and len(prov["results_sha256"]) == 64
    assert "git" in prov and prov["command"][:2] == ["mobexport", "regress"]

    assert prov["runs"] == [{"results_file": str(results), "results_sha256": prov["results_sha256"],
                             "measured_from": "2026-11-01T12:00:00+00:00"}]

    data = json.loads(path.read_text())
    assert data["kind"] == "mobexport-baseline" and data["schema_version"] == BASELINE_SCHEMA_VERSION
    assert [run["run"] for run in data["points"][0]["runs"]] == [0]
    stats = data["points"][0]["latency_ms"]
    assert stats["n"] == 60 and stats["ci95_low"] <= stats["median"] <= stats["ci95_high"]


def test_a_baseline_compares_like_its_results(make_results, tmp_path):
    results = make_results("base", seed=0)
    baseline_from_results(results, tmp_path / "b.json")
    from mobexport.benchmarks.results.records import read_records

    direct = points_from_records(read_records(results))
    report = compare(read_baseline(tmp_path / "b.json").points, direct)
    assert report.exit_status == 0
    assert all(abs(p.ratio - 1) < 1e-4 for p in report.points)


def test_failed_cases_are_left_out_and_named(synthetic, tmp_path):
    records = synthetic(seed=0)
    records[1].status, records[1].error, records[1].samples_ms = "failed", "boom", []
    b = Baseline.from_records(records, name="x")
    assert records[1].case not in b.points and len(b.points) == 8
    assert b.provenance["skipped_failed_cases"] == [records[1].case.label()]


def test_nothing_successful_is_an_error(synthetic):
    records = synthetic(seed=0, models=["mobile_former_52m"], resolutions=(160,))
    records[0].status, records[0].samples_ms = "failed", []
    with pytest.raises(BenchmarkError, match="no successful measurement"):
        Baseline.from_records(records, name="x")


def test_records_without_samples_cannot_make_a_baseline(synthetic):
    records = synthetic(seed=0, models=["mobile_former_52m"], resolutions=(160,))
    records[0].samples_ms = []
    with pytest.raises(BenchmarkError, match="no raw latency samples"):
        Baseline.from_records(records, name="x")


def _valid(synthetic) -> dict:
    return Baseline.from_records(synthetic(seed=0), name="x").to_dict()


@pytest.mark.parametrize("corrupt, message", [
    (lambda d: d.update(schema_version=99), "schema_version must be 1, not 99"),
    (lambda d: d.pop("kind"), "not a mobexport baseline"),
    (lambda d: d.update(points=[]), "points must have at least 1 item"),
    (lambda d: d["points"][0]["runs"][0].update(samples_ms=[]), r"points\[0\].runs\[0\].samples_ms must have at least 1 item"),
    (lambda d: d["points"][0]["runs"][0].update(samples_ms=[1.0, -2.0]), r"samples_ms\[1\] must be > 0"),
    (lambda d: d["points"][0].pop("runs"), r"points\[0\] lacks 'runs'"),
    (lambda d: d["points"][0]["runs"][0].update(run="first"), r"runs\[0\].run must be integer"),
    (lambda d: d["points"][0]["runs"].append(d["points"][0]["runs"][0]), "lists a run twice"),
    (lambda d: d["points"][0]["case"].pop("model"), r"points\[0\].case lacks 'model'"),
    (lambda d: d["points"][0]["case"].update(colour="red"), "unknown key 'colour'"),
    (lambda d: d["points"][0].update(macs="many"), "macs must be integer or null"),
    (lambda d: d["points"].append(d["points"][0]), "appears twice"),
])
def test_malformed_baselines_are_refused(synthetic, tmp_path, corrupt, message):
    data = _valid(synthetic)
    corrupt(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(BenchmarkError, match=message):
        read_baseline(path)


def test_missing_and_non_json_baselines_are_refused(tmp_path):
    with pytest.raises(BenchmarkError, match="does not exist"):
        read_baseline(tmp_path / "nope.json")
    (tmp_path / "broken.json").write_text('{"kind": ')
    with pytest.raises(BenchmarkError, match="not valid JSON"):
        read_baseline(tmp_path / "broken.json")


def test_interrupted_write_keeps_the_old_baseline(synthetic, tmp_path, monkeypatch):
    path = tmp_path / "ci.json"
    old = Baseline.from_records(synthetic(seed=0), name="ci")
    write_baseline(old, path)
    before = path.read_text()

    def crash(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        write_baseline(Baseline.from_records(synthetic(seed=5, machine=3.0), name="ci"), path)
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ci.json"]  # no temporary file left


def test_unwritable_destination_is_a_user_error(synthetic, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutputDirError, match="cannot write baseline"):
        write_baseline(Baseline.from_records(synthetic(seed=0), name="x"), blocker / "sub" / "b.json")


def test_samples_are_stored_one_line_per_point(synthetic, tmp_path):
    path = write_baseline(Baseline.from_records(synthetic(seed=0), name="x"), tmp_path / "x.json")
    lines = [line for line in path.read_text().splitlines() if '"samples_ms"' in line]
    assert len(lines) == 9 and all(line.rstrip().endswith(("]", "],")) for line in lines)


def test_git_revision_outside_a_repository_is_none(tmp_path):
    assert baseline_module.git_revision(tmp_path) is None


def test_several_runs_are_pooled_and_kept_apart(make_results, tmp_path):
    paths = [make_results(f"run{i}", seed=i) for i in range(3)]
    written = baseline_from_results(paths, tmp_path / "multi.json")
    loaded = read_baseline(tmp_path / "multi.json")
    for case, point in loaded.points.items():
        assert [run for run, _ in point.runs] == [0, 1, 2]
        assert len(point.samples_ms) == sum(len(samples) for _, samples in point.runs) == 180
        assert set(point.run_medians()) == {0, 1, 2}
        assert point.macs == written.points[case].macs
    assert [r["results_file"] for r in loaded.provenance["runs"]] == [str(p) for p in paths]
    assert loaded.provenance["results_file"] is None  # several files: see "runs"


def test_a_case_missing_from_one_run_keeps_its_other_runs(synthetic, tmp_path):
    full, partial = synthetic(seed=0), synthetic(seed=1, resolutions=(160, 192))
    b = Baseline.from_runs([(None, full), (None, partial)], name="x")
    at_224 = next(p for c, p in b.points.items() if c.resolution == 224)
    at_160 = next(p for c, p in b.points.items() if c.resolution == 160)
    assert [run for run, _ in at_224.runs] == [0] and [run for run, _ in at_160.runs] == [0, 1]


def test_runs_of_different_code_are_refused(synthetic):
    changed = synthetic(seed=1, macs_scale={("mobile_former_52m", 160): 1.2})
    with pytest.raises(BenchmarkError, match="different MACs/params"):
        Baseline.from_runs([(None, synthetic(seed=0)), (None, changed)], name="x")


def test_committed_ci_baseline_matches_the_ci_sweep():
    import re
    from pathlib import Path

    repo = Path(__file__).resolve().parents[3]
    baseline = read_baseline(repo / "benchmarks" / "regress" / "baselines" / "ci_local_cpu.json")
    script = (repo / "benchmarks" / "regress" / "ci_regress.sh").read_text()
    models = re.search(r'^MODELS="([^"]+)"', script, re.M).group(1).split(",")
    resolutions = [int(r) for r in re.search(r'^RESOLUTIONS="([^"]+)"', script, re.M).group(1).split(",")]
    assert {(c.model, c.target, c.resolution) for c in baseline.points} == {
        (m, "onnx", r) for m in models for r in resolutions}
    assert "mobilenet_v3_large_100" in models  # the reference of relative mode
    assert baseline.provenance["command"][:3] == ["mobexport", "regress", "--update-baseline"]  # made by the tool
    assert all(len(p.runs) == len(baseline.provenance["runs"]) for p in baseline.points.values())
