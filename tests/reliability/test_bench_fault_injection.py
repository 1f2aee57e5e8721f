"""Fault injection (issue 24, acceptance): SIGKILL ``mobexport bench`` at random points, over and over.

A sweep of tiny prepared ONNX artifacts (hand-made, so nothing is exported) is started and SIGKILLed
after a random delay, at least 20 times in a row (with a few SIGTERMs among them, which must clean up at
once, as Ctrl-C does, and exit 143 wherever they land); each run resumes the previous one. After every kill:
no timing worker of the killed run is left running, and no record that was complete before the kill is
lost by the next run. Every run that is not killed succeeds. After the last (uninterrupted) run:
every case has exactly one successful record, no ``mobexport-case-*`` directory and no temporary file is
left, and the lock is free.

The runs are forked from a process that imported mobexport once (see bench_zygote.py): each child runs
the real ``bench`` command from its start, only the seconds of importing are shared.
``MOBEXPORT_KILLS`` sets the number of kills (the slow variant runs 60).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mobexport.benchmarks.sweep.artifacts import export_command, export_config
from mobexport.benchmarks.results.records import CaseKey
from mobexport.errors import EXIT_TERMINATED
from mobexport.export.artifact import Artifact
from mobexport.manifest import Manifest, sha256_tree

from ..devices.conftest import tiny_onnx

MODEL = "mobilenet_v3_small_075"
RESOLUTIONS = (96, 128, 160)
MAX_DELAY_S = 4.0  # a case is a worker process that starts in seconds on a loaded machine
ZYGOTE = Path(__file__).with_name("bench_zygote.py")


def prepare_artifacts(out: Path) -> None:
    """The artifacts bench would reuse, made by hand: a tiny ONNX graph per resolution with its manifest."""
    for resolution in RESOLUTIONS:
        case = CaseKey(model=MODEL, target="onnx", resolution=resolution)
        directory = export_config(case, out).artifact_dir()
        path = tiny_onnx(directory / "model.onnx", resolution=resolution)
        Manifest(model={"name": MODEL}, target="onnx",
                 artifact={"file": "model.onnx", "size_bytes": path.stat().st_size, "sha256": sha256_tree(path)},
                 resolution={"export": resolution, "dynamic": False}, macs={"total_macs": resolution**2 * 432},
                 params=650, command=export_command(case)).write(directory)
        assert Artifact.open(directory).verify_hash()


def complete_lines(path: Path) -> list[str]:
    """The newline-terminated lines of the results file: the records a kill must never take away."""
    if not path.exists():
        return []
    data = path.read_text()
    return data[: data.rfind("\n") + 1].splitlines() if "\n" in data else []


def workers_of(scratch: Path) -> list[int]:
    """Live processes whose command line names a case directory under ``scratch`` (timing workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(scratch).encode() in cmdline and b"case_worker" in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


class Zygote:
    def __init__(self, tmp: Path, argv: list[str], scratch: Path):
        env = {**os.environ, "TMPDIR": str(scratch), "COLUMNS": "200"}
        self.proc = subprocess.Popen([sys.executable, str(ZYGOTE), str(tmp), *argv], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env, cwd=tmp)

    def start(self) -> tuple[int, Path]:
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        _, pid, log = self.proc.stdout.readline().split()
        return int(pid), Path(log)

    def finish(self, pid: int) -> int:
        word, ended, code = self.proc.stdout.readline().split()
        assert word == "exit" and int(ended) == pid
        return int(code)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def kill_test(tmp_path: Path, kills: int, seed: int, terms: int = 4) -> None:
    out, scratch = tmp_path / "bench", tmp_path / "scratch"
    scratch.mkdir()
    prepare_artifacts(out)
    argv = ["--models", MODEL, "--targets", "onnx", "--resolutions", ",".join(map(str, RESOLUTIONS)),
            "--min-time", "0.02", "--warmup-time", "0", "--min-iters", "3", "--threads", "1", "--out", str(out)]
    rng = random.Random(seed)
    results = out / "results.jsonl"
    zygote = Zygote(tmp_path, argv, scratch)
    killed = completed = 0
    terms_left = terms
    try:
        while killed < kills:
            kept = complete_lines(results)
            pid, log = zygote.start()
            time.sleep(rng.uniform(0.0, MAX_DELAY_S))
            sig = signal.SIGTERM if terms_left and rng.random() < 0.25 else signal.SIGKILL
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
            code = zygote.finish(pid)
            text = log.read_text()
            assert "Traceback" not in text, text
            if code == -signal.SIGKILL:
                killed += 1
            elif sig == signal.SIGTERM and code in (EXIT_TERMINATED, -signal.SIGTERM):
                terms_left -= 1   # handled like Ctrl-C: it cleaned up after itself, no next run needed
                if code == EXIT_TERMINATED:   # -SIGTERM: it landed before mobexport installed its handler
                    assert "interrupted" in text and not list(scratch.glob("mobexport-case-*")), text
            else:   # it finished before the kill: it must have succeeded
                assert code == 0, text
                completed += 1
                results.unlink()   # start the sweep over, so that later kills still land mid-sweep
                kept = []
            deadline = time.monotonic() + 10
            while workers_of(scratch) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert workers_of(scratch) == [], "a timing worker outlived the killed bench"
            now = complete_lines(results)
            assert now[: len(kept)] == kept, "a record finished before the kill was lost"
        pid, log = zygote.start()                 # the run after the last kill: completes and cleans up
        code = zygote.finish(pid)
        text = log.read_text()
        assert code == 0 and "Traceback" not in text, text
    finally:
        zygote.close()
    records = [json.loads(line) for line in complete_lines(results)]
    ok = [r["case"]["resolution"] for r in records if r["status"] == "ok"]
    assert sorted(ok) == sorted(RESOLUTIONS)                     # every case once, none lost or doubled
    assert results.read_text().endswith("\n")
    left = list(scratch.glob("mobexport-case-*"))
    assert left == [], left                                      # no case directory left
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    print(f"\nSIGKILLed bench {killed} times, SIGTERMed it {terms - terms_left} times "
          f"({completed} runs finished before their signal)")


def test_bench_survives_sigkill_at_random_points(tmp_path):
    kill_test(tmp_path, kills=int(os.environ.get("MOBEXPORT_KILLS", "20")), seed=0)


@pytest.mark.slow
def test_bench_survives_sigkill_at_many_random_points(tmp_path):
    kill_test(tmp_path, kills=60, seed=1)
