"""benchmarks/regress/ci_regress.sh with its default metric, instruction counts, and a stand-in for 'mobexport bench'."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .test_ci_regress_script import FAKE_MOBEXPORT
from .test_instruction_regress import write_results

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "benchmarks" / "regress" / "ci_regress.sh"
COMMITTED = REPO / "benchmarks" / "regress" / "baselines" / "ci_instructions.json"


@pytest.fixture
def instruction_env(tmp_path):
    if shutil.which("bash") is None:
        pytest.skip("bash is not available")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "mobexport").write_text(FAKE_MOBEXPORT % sys.executable)
    (bin_dir / "mobexport").chmod(0o755)
    prepared = tmp_path / "prepared"
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", FAKE_RESULTS_DIR=str(prepared),
               FAKE_COUNTER=str(tmp_path / "counter"), FAKE_LOG=str(tmp_path / "bench.log"),
               MOBEXPORT_CI_BASELINE=str(tmp_path / "baseline.json"), MOBEXPORT_CI_OUT=str(tmp_path / "out"),
               COLUMNS="200")
    env.pop("MOBEXPORT_CI_METRIC", None)
    env.pop("GITHUB_STEP_SUMMARY", None)
    return env, prepared, tmp_path


def run_script(env, *args):
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=600)


def test_the_default_metric_makes_an_instruction_baseline_then_flags_ten_percent_at_its_point(instruction_env):
    env, prepared, tmp = instruction_env
    write_results(prepared / "0.jsonl")                                         # the baseline's one run
    write_results(prepared / "1.jsonl")                                         # unchanged
    write_results(prepared / "2.jsonl", change={("mobile_former_52m", 224): 1.10})  # a 10% regression
    update = run_script(env, "--update-baseline")
    assert update.returncode == 0, update.stdout + update.stderr
    baseline = json.loads((tmp / "baseline.json").read_text())
    assert baseline["metric"] == "instructions" and baseline["tool_versions"]["valgrind"]
    assert "--metric instructions" in (tmp / "bench.log").read_text().splitlines()[0]

    unchanged = run_script(env, "--on-other-device", "warn")  # what .ci/run passes
    assert unchanged.returncode == 0, unchanged.stdout + unchanged.stderr
    assert "no instruction-count regression" in unchanged.stdout

    slower = run_script(env, "--on-other-device", "warn")
    assert slower.returncode == 1, slower.stdout + slower.stderr
    regressed = [line for line in (tmp / "out" / "regress.md").read_text().splitlines() if "❌ regressed" in line]
    assert len(regressed) == 1 and "mobile_former_52m/onnx@224" in regressed[0]


def test_an_unknown_metric_is_exit_2(instruction_env):
    env, _, _ = instruction_env
    result = run_script(dict(env, MOBEXPORT_CI_METRIC="cycles"))
    assert result.returncode == 2 and "must be instructions or latency" in result.stderr


def test_the_committed_instruction_baseline_covers_the_ci_sweep():
    from mobexport.benchmarks.regress.instruction_baseline import read_instruction_baseline

    baseline = read_instruction_baseline(COMMITTED)
    cases = {(c.model, c.target, c.resolution, c.threads) for c in baseline.points}
    assert cases == {(m, "onnx", r, 1) for m in ("mobile_former_52m", "mobile_former_294m", "mobilenet_v3_large_100")
                     for r in (160, 192, 224)}
    assert {"valgrind", "onnxruntime"} <= set(baseline.tool_versions)
