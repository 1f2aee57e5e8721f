"""Issue 24 item 9 (bench side): a SIGKILLed or SIGTERMed sweep leaves no timing worker running and no
``mobexport-case-*`` directory behind (the next run sweeps those of dead processes).

The parent here is a small process that measures one case with the local device's real subprocess
machinery; its worker announces itself and then waits, standing in for a case being timed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mobexport.devices.local import CASE_DIR_PREFIX, case_dir_prefix, sweep_stale_case_dirs

WORKER = """
import os, sys, time
from mobexport.devices.case_worker import die_with_parent
die_with_parent()
with open(os.environ["WORKER_PID_FILE"], "w") as f:
    f.write(str(os.getpid()))
time.sleep(120)
"""

PARENT = """
import sys
from mobexport.benchmarks.sweep.cli import sigterm_as_interrupt
from mobexport.devices.device import CaseJob
from mobexport.devices.local import LocalDevice
device = LocalDevice(worker_command=[sys.executable, sys.argv[1]])
with sigterm_as_interrupt():
    device.measure(CaseJob(kind="pytorch", model="tiny", resolution=32))
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def start_case(tmp_path):
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    pid_file = tmp_path / "worker.pid"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "WORKER_PID_FILE": str(pid_file), "TMPDIR": str(scratch)}
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(worker)], env=env, stderr=subprocess.PIPE)
    assert wait_until(lambda: pid_file.is_file() and pid_file.read_text().strip()), parent.stderr.read()
    return parent, int(pid_file.read_text()), scratch


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_the_timing_worker_dies_with_the_sweep(tmp_path, sig):
    parent, worker_pid, scratch = start_case(tmp_path)
    assert list(scratch.glob(f"{CASE_DIR_PREFIX}{parent.pid}-*"))
    parent.send_signal(sig)
    parent.wait(timeout=20)
    assert wait_until(lambda: not alive(worker_pid)), "the timing worker outlived its sweep"
    left = list(scratch.glob(f"{CASE_DIR_PREFIX}*"))
    if sig == signal.SIGTERM:
        assert left == []                                  # handled like Ctrl-C: cleaned up at once
    else:
        assert len(left) == 1                              # nothing runs after SIGKILL ...
        assert sweep_stale_case_dirs(scratch) == left      # ... so the next run sweeps it
        assert list(scratch.iterdir()) == []


def test_only_directories_of_dead_processes_are_swept(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout.strip()
    dead = tmp_path / f"{case_dir_prefix(int(finished))}abc"
    mine = tmp_path / f"{case_dir_prefix()}def"
    parents = tmp_path / f"{case_dir_prefix(os.getppid())}ghi"
    unrelated = tmp_path / "mobexport-case-notapid"
    no_owner = tmp_path / f"mobexport-case-{finished}"        # no owner in the name: not ours to judge
    for d in (dead, mine, parents, unrelated, no_owner):
        d.mkdir()
        (d / "job.json").write_text("{}")
    assert sweep_stale_case_dirs(tmp_path) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (mine, parents, unrelated, no_owner))


def test_a_worker_whose_parent_is_already_gone_exits_at_once(tmp_path):
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    env = {**os.environ, "WORKER_PID_FILE": str(tmp_path / "pid"), "MOBEXPORT_CASE_PARENT_PID": "1"}
    proc = subprocess.run([sys.executable, str(worker)], env=env, timeout=60)
    assert proc.returncode != 0 and not (tmp_path / "pid").exists()


def test_a_sigterm_during_the_sweep_exits_like_one_before_it():
    """The sweep's handler is the CLI's: exit 143 wherever the SIGTERM lands (CI's flake before: 130 or 143)."""
    from mobexport.benchmarks.sweep.cli import sigterm_as_interrupt
    from mobexport.errors import EXIT_TERMINATED
    from mobexport.signals import Terminated

    before, hangup = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)
    with pytest.raises(Terminated) as caught:
        with sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)   # the handler runs at the next bytecode; never reached
    assert caught.value.exit_code == EXIT_TERMINATED
    assert signal.getsignal(signal.SIGTERM) is before
    signal.signal(signal.SIGHUP, hangup)   # the handler ignores a second signal; undo it for the next test
