"""Fault injection on real exports: SIGKILL at random points, then check what the next run finds (issue 24).

Each point is a real ``mobexport`` export (mobilenet_v3_small_075 to ONNX, static
96x96, no graph passes) killed after a random delay drawn over the span of a
whole export, so kills land in imports, tracing, lowering, parity, writing
and publishing. After every kill the artifact completed before must still
verify; after the next complete run no staging, link temporary or stale
version is left. Slow: about 20 real exports.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mobexport.export.artifact import Artifact

MODEL = "mobilenet_v3_small_075"
POINTS = 20


def start_export(out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mobexport.cli", "--model", MODEL, "--target", "onnx",
                             "--resolution", "96", "--static", "--passes", "none", "--parity-samples", "1",
                             "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def assert_intact(final: Path) -> None:
    with Artifact.reading(final) as artifact:
        assert artifact.verify_hash()


@pytest.mark.slow
def test_sigkilled_exports_lose_nothing_and_the_next_run_leaves_no_debris(tmp_path):
    seed = int(os.environ.get("MOBEXPORT_FAULT_SEED", str(int(time.time()))))
    rng = random.Random(seed)
    out = tmp_path / "out"
    started = time.monotonic()
    first = start_export(out)
    assert first.wait(timeout=600) == 0, first.stderr.read()
    span = time.monotonic() - started
    final = out / MODEL / "onnx"
    assert_intact(final)
    for point in range(0, POINTS, 2):
        pair = [start_export(out) for _ in range(2)]  # two at once: kills race a concurrent finisher too
        for process in pair:
            time.sleep(rng.uniform(0, span * 0.6))
            process.kill()
        for process in pair:
            process.wait(timeout=120)
        assert_intact(final), f"seed {seed}, point {point}"
    last = start_export(out)
    assert last.wait(timeout=600) == 0, last.stderr.read()
    assert_intact(final)
    published = os.readlink(final)
    left = sorted(p.name for p in final.parent.iterdir() if p.name not in ("onnx", published))
    assert left == [], f"debris after the next run (seed {seed}): {left}"
