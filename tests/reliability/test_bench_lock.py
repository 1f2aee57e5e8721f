"""Issue 24 item 6: two ``bench`` runs on the same --out. The second is refused at once, in one line naming
the first one's process id (exit 2); the lock goes away with its holder, however the holder ends."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from mobexport.benchmarks.sweep import cli as bench_cli
from mobexport.out_lock import OutputLockedError, locked_out_dir

from .sweep_helpers import assert_one_line_error, run_cli

HOLD = """
import sys, time
from mobexport.out_lock import locked_out_dir
with locked_out_dir(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock of tmp_path/bench, as a running sweep does."""
    out = tmp_path / "bench"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    yield out, proc
    proc.kill()
    proc.wait()


def test_a_second_bench_on_the_same_out_is_refused_naming_the_first(holder, capsys, monkeypatch):
    out, proc = holder

    def no_sweep(*args, **kwargs):
        raise AssertionError("the second run started sweeping")

    monkeypatch.setattr(bench_cli, "run_sweep", no_sweep)
    status, _, err = run_cli(capsys, "bench", "--models", "mobilenet_v3_small_075", "--targets", "pytorch",
                             "--resolutions", "96", "--out", out)
    assert_one_line_error(status, err, f"another mobexport bench (process {proc.pid}) is writing to",
                          "choose another --out")
    assert not (out / "results.jsonl").exists()


def test_the_lock_dies_with_its_holder(holder):
    out, proc = holder
    with pytest.raises(OutputLockedError):
        with locked_out_dir(out):
            pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with locked_out_dir(out) as lock:                 # a SIGKILLed holder leaves no lock behind
        assert lock.read_text().strip().isdigit()


def test_one_process_cannot_take_the_lock_twice(tmp_path):
    with locked_out_dir(tmp_path):
        with pytest.raises(OutputLockedError):
            with locked_out_dir(tmp_path):
                pass
