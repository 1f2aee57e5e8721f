"""benchmarks/regress/ci_regress.sh's control flow, with a stand-in for 'mobexport bench' (the real sweep takes minutes)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "benchmarks" / "regress" / "ci_regress.sh"

# 'mobexport bench ... --out DIR' copies the next prepared results file into DIR and exits
# with $FAKE_BENCH_STATUS; any other 'mobexport' command is the real CLI.
FAKE_MOBEXPORT = """#!/usr/bin/env bash
if [ "$1" = "bench" ]; then
    echo "$*" >> "$FAKE_LOG"
    out=""
    while [ $# -gt 0 ]; do [ "$1" = "--out" ] && out="$2"; shift; done
    n=$(cat "$FAKE_COUNTER" 2>/dev/null || echo 0)
    echo $((n + 1)) > "$FAKE_COUNTER"
    mkdir -p "$out"
    cp "$FAKE_RESULTS_DIR/$n.jsonl" "$out/results.jsonl"
    exit "${FAKE_BENCH_STATUS:-0}"
fi
exec "%s" -m mobexport.cli "$@"
"""


@pytest.fixture
def fake_env(tmp_path, make_results):
    if shutil.which("bash") is None:
        pytest.skip("bash is not available")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "mobexport"
    fake.write_text(FAKE_MOBEXPORT % sys.executable)
    fake.chmod(0o755)
    results_dir = tmp_path / "prepared"
    results_dir.mkdir()

    def prepare(*runs):
        for i, kwargs in enumerate(runs):
            shutil.copy(make_results(f"src{i}", **kwargs), results_dir / f"{i}.jsonl")

    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", FAKE_RESULTS_DIR=str(results_dir),
               FAKE_COUNTER=str(tmp_path / "counter"), FAKE_LOG=str(tmp_path / "bench.log"),
               MOBEXPORT_CI_BASELINE=str(tmp_path / "baseline.json"), MOBEXPORT_CI_OUT=str(tmp_path / "out"),
               MOBEXPORT_CI_BASELINE_RUNS="3", MOBEXPORT_CI_METRIC="latency", COLUMNS="200")
    env.pop("GITHUB_STEP_SUMMARY", None)
    return env, prepare, tmp_path


def run_script(env, *args):
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow  # five CLI processes: about a minute on 2 busy cores
def test_update_then_check_then_regression(fake_env):
    env, prepare, tmp = fake_env
    prepare(dict(seed=0), dict(seed=1), dict(seed=2), dict(seed=3),
            dict(seed=4, slowdown={("mobile_former_52m", 160): 2.0}))
    update = run_script(env, "--update-baseline")
    assert update.returncode == 0, update.stderr
    baseline = json.loads((tmp / "baseline.json").read_text())
    assert all(len(point["runs"]) == 3 for point in baseline["points"])
    bench_lines = (tmp / "bench.log").read_text().splitlines()
    assert len(bench_lines) == 3
    assert "--models mobile_former_52m,mobile_former_294m,mobilenet_v3_large_100" in bench_lines[0]
    assert "--targets onnx --resolutions 160,192,224" in bench_lines[0]

    check = run_script(env)
    assert check.returncode == 0, check.stdout + check.stderr
    assert (tmp / "out" / "regress.md").read_text().startswith("## mobexport regression check: ✅")
    assert len(list((tmp / "out").glob("regress-results-*.png"))) == 1   # one plot per run, named per run

    slower = run_script(env)
    assert slower.returncode == 1, slower.stdout + slower.stderr
    assert "mobile_former_52m/onnx@160" in slower.stdout
    assert len(list((tmp / "out").glob("regress-results-*.png"))) == 2   # the first run's plot is kept


def test_bench_bad_input_stops_with_its_status(fake_env):
    env, prepare, _ = fake_env
    prepare(dict(seed=0))
    result = run_script(dict(env, FAKE_BENCH_STATUS="2"))
    assert result.returncode == 2
    assert "mobexport bench failed (exit 2)" in result.stderr


def test_missing_baseline_is_exit_2(fake_env):
    env, prepare, _ = fake_env
    prepare(dict(seed=0))
    result = run_script(env)
    assert result.returncode == 2
    assert "does not exist" in result.stderr


def test_the_script_finds_the_committed_baseline_from_anywhere(fake_env):
    """It works in the repository root whatever the caller's directory: the default baseline is found."""
    env, _, tmp = fake_env
    env = {k: v for k, v in env.items() if k != "MOBEXPORT_CI_BASELINE"}
    fake = Path(env["PATH"].split(os.pathsep)[0]) / "mobexport"
    fake.write_text('#!/usr/bin/env bash\necho "$PWD $*" >> "$FAKE_LOG"\n')  # record where and what, run nothing
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120, cwd=tmp)
    assert done.returncode == 0, done.stderr
    calls = (tmp / "bench.log").read_text().splitlines()
    where, *_ = calls[-1].split(" ")
    baseline = calls[-1].split("--baseline ")[1].split(" ")[0]
    assert Path(where) == REPO and (REPO / baseline).is_file(), calls
