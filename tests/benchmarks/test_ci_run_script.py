""".ci/run removes everything it creates (virtual environment, temporary directories), whatever
the outcome. python3, pip, pytest and the regression script are stand-ins: no install, no tests."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# 'python3 -m venv DIR' makes DIR/bin/activate, which puts fake pip/python first on PATH.
FAKE_PYTHON3 = """#!/usr/bin/env bash
venv="$3"
mkdir -p "$venv/bin"
dd if=/dev/zero of="$venv/big-file" bs=1024 count=64 status=none
cat > "$venv/bin/activate" <<ACT
export PATH="$venv/bin:\\$PATH"
ACT
cat > "$venv/bin/pip" <<'PIP'
#!/usr/bin/env bash
echo "pip $*" >> "$CI_LOG"
PIP
cat > "$venv/bin/python" <<'PY'
#!/usr/bin/env bash
echo "python $* TMPDIR=$TMPDIR" >> "$CI_LOG"
mkdir -p "$TMPDIR/test-debris"
[ -n "$CI_SLEEP" ] && sleep "$CI_SLEEP"
exit "${CI_PYTEST_STATUS:-0}"
PY
chmod +x "$venv/bin/pip" "$venv/bin/python"
"""


@pytest.fixture
def ci_tree(tmp_path):
    if shutil.which("bash") is None:
        pytest.skip("bash is not available")
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    (repo / "benchmarks" / "regress").mkdir(parents=True)
    shutil.copy(REPO / ".ci" / "run", repo / ".ci" / "run")
    regress = repo / "benchmarks" / "regress" / "ci_regress.sh"
    regress.write_text('#!/usr/bin/env bash\necho "ci_regress $*" >> "$CI_LOG"\n')
    regress.chmod(0o755)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text(FAKE_PYTHON3)
    (bin_dir / "python3").chmod(0o755)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", TMPDIR=str(tmp), CI_LOG=str(tmp_path / "ci.log"))
    return repo, tmp, env, tmp_path / "ci.log"


def run_ci(repo, env, **extra):
    return subprocess.run(["bash", str(repo / ".ci" / "run")], env=dict(env, **extra), capture_output=True,
                          text=True, timeout=120)


def test_a_passing_run_leaves_nothing_behind(ci_tree):
    repo, tmp, env, log = ci_tree
    result = run_ci(repo, env)
    assert result.returncode == 0, result.stderr
    lines = log.read_text().splitlines()
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    install = next(line for line in readme.splitlines() if line.startswith("pip install -e "))
    assert lines[0] == install.replace('"', "") == "pip install -e .[all,litert,cluster,dev]"  # exactly as the README says
    assert lines[1].startswith("python -m pytest -m not slow -n auto --basetemp ")
    assert "TMPDIR=" + str(tmp) + "/mobexport-ci." in lines[1]      # the tests' temporary files are ours too
    assert lines[2] == "ci_regress --on-other-device warn"
    assert list(tmp.iterdir()) == []                                 # venv, pytest and test temp dirs removed


@pytest.mark.parametrize("status", [1, 5])
def test_a_failing_run_keeps_its_status_and_still_cleans_up(ci_tree, status):
    repo, tmp, env, log = ci_tree
    result = run_ci(repo, env, CI_PYTEST_STATUS=str(status))
    assert result.returncode == 1 if status == 5 else status
    assert "ci_regress" not in log.read_text()
    assert list(tmp.iterdir()) == []


def test_an_interrupted_run_cleans_up(ci_tree):
    repo, tmp, env, log = ci_tree
    proc = subprocess.Popen(["bash", str(repo / ".ci" / "run")], env=dict(env, CI_SLEEP="3"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (log.exists() and "python -m pytest" in log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) != 0
    assert list(tmp.iterdir()) == []
