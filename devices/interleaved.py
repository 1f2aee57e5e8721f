"""Interleaved timing: every subject takes a turn, round after round, so load hits all of them alike.

A study that compares artifacts side by side (passes on vs off, int8 vs fp32,
one form of an op against another) on a shared machine cannot trust absolute
numbers: another job may take a core for a minute. Timing the subjects in
turns spreads that load over all of them, so their *ratios* stay meaningful.
Each round starts at a different subject (``order="rotate"``) or visits them
in a seeded random order (``order="shuffle"``), so no subject always runs
right after the same neighbour.

:func:`time_interleaved` is the loop, written once; what a turn measures is
the caller's: a few inferences of an in-process runner, one
:class:`RunnerProcess` (an artifact loaded in its own worker process, which
waits on a pipe between turns), or a whole ``Device.measure``. The load
average seen at the start and after each round is returned with the samples,
for the study to report.

``python -m mobexport.devices.interleaved JOB_JSON`` is the worker program of
:class:`RunnerProcess`.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Generic, Hashable, Mapping, Sequence, TypeVar

from .device import CaseJob

Key = TypeVar("Key", bound=Hashable)
ORDERS = ("rotate", "shuffle")
WARMUP_CALLS = 3  # untimed inferences a worker runs after loading, before it says it is ready


@dataclass
class InterleavedTimes(Generic[Key]):
    """Per subject, every sample its turns returned (in the caller's unit), and the load average seen."""

    samples: dict[Key, list[float]]
    load_average: dict[str, float] = field(default_factory=dict)  # {"min", "max", "mean"} of the 1-minute load


def _load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:  # not available on this platform
        return float("nan")


def round_order(keys: Sequence[Key], round_index: int, order: str, rng: random.Random) -> list[Key]:
    """The subjects in the order round ``round_index`` visits them."""
    if order == "rotate":
        start = round_index % len(keys)
        return list(keys[start:]) + list(keys[:start])
    if order == "shuffle":
        shuffled = list(keys)
        rng.shuffle(shuffled)
        return shuffled
    raise ValueError(f"unknown order {order!r}; one of {', '.join(ORDERS)}")


def time_interleaved(turns: Mapping[Key, Callable[[], Sequence[float]]], rounds: int, *, order: str = "rotate",
                     seed: int = 0, on_turn: Callable[[Key], None] | None = None) -> InterleavedTimes[Key]:
    """Run every subject's turn once per round, ``rounds`` times; collect what each turn returns.

    ``turns`` maps a subject to a callable that times it once and returns its
    samples. ``on_turn(key)`` is called after each turn (a progress bar).
    """
    keys = list(turns)
    samples: dict[Key, list[float]] = {key: [] for key in keys}
    if not keys:
        return InterleavedTimes(samples)
    rng = random.Random(seed)
    loads = [_load_average()]
    for round_index in range(rounds):
        for key in round_order(keys, round_index, order, rng):
            samples[key].extend(turns[key]())
            if on_turn is not None:
                on_turn(key)
        loads.append(_load_average())
    return InterleavedTimes(samples, {"min": min(loads), "max": max(loads), "mean": sum(loads) / len(loads)})


class RunnerProcess:
    """One artifact loaded in its own worker process; :meth:`turn` times ``iters`` inferences there.

    Between turns the worker blocks on its pipe, so it takes no CPU while the
    others run (an ONNX Runtime session in the same process would spin).
    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, job: CaseJob, *, name: str = ""):
        self.name = name or job.label or job.model
        self._proc = subprocess.Popen([sys.executable, "-m", "mobexport.devices.interleaved", json.dumps(job.to_dict())],
                                      text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL)

    def wait_ready(self) -> None:
        if self._proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"worker for {self.name} failed to load its artifact")

    def turn(self, iters: int) -> list[float]:
        """Milliseconds of each of ``iters`` inferences, timed in the worker."""
        self._proc.stdin.write(f"{iters}\n")
        self._proc.stdin.flush()
        return [float(s) for s in self._proc.stdout.readline().split()]

    def close(self) -> None:
        if self._proc.stdin:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def __enter__(self) -> "RunnerProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _worker(job_json: str) -> int:
    """The worker of :class:`RunnerProcess`: load, warm up, say ``ready``, then time ``N`` calls per stdin line."""
    import numpy as np

    from .case_worker import build_runner

    job = CaseJob.from_dict(json.loads(job_json))
    runner, _ = build_runner(job, "cpu")
    runner.activate()
    x = np.random.default_rng(0).standard_normal((job.batch, 3, job.resolution, job.resolution)).astype(np.float32)
    for _ in range(WARMUP_CALLS):
        runner.infer(x)
    print("ready", flush=True)
    for line in sys.stdin:
        samples = []
        for _ in range(int(line)):
            start = time.perf_counter()
            runner.infer(x)
            samples.append((time.perf_counter() - start) * 1e3)
        print(" ".join(f"{s:.4f}" for s in samples), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1]))
