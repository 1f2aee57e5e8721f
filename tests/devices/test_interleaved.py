"""The one interleaved timer: turn order per round, what it collects, and a worker process per artifact."""

from __future__ import annotations

import random

import pytest

from mobexport.devices.device import EAGER, CaseJob
from mobexport.devices.interleaved import RunnerProcess, round_order, time_interleaved


def recording_turns(keys, visits):
    return {key: (lambda key=key: visits.append(key) or [float(len(visits))]) for key in keys}


def test_rotate_starts_each_round_at_the_next_subject():
    visits: list[str] = []
    times = time_interleaved(recording_turns("abc", visits), rounds=4, order="rotate")
    assert visits == list("abc" "bca" "cab" "abc")
    assert times.samples == {"a": [1.0, 6.0, 8.0, 10.0], "b": [2.0, 4.0, 9.0, 11.0], "c": [3.0, 5.0, 7.0, 12.0]}
    assert set(times.load_average) == {"min", "max", "mean"}


def test_shuffle_visits_everyone_each_round_in_a_seeded_order():
    first: list[str] = []
    again: list[str] = []
    time_interleaved(recording_turns("abcd", first), rounds=5, order="shuffle", seed=3)
    time_interleaved(recording_turns("abcd", again), rounds=5, order="shuffle", seed=3)
    assert first == again
    rounds = [first[i:i + 4] for i in range(0, 20, 4)]
    assert all(sorted(r) == list("abcd") for r in rounds) and len({tuple(r) for r in rounds}) > 1
    # The same permutations as shuffling a copy of the subjects with random.Random(seed), round after round.
    rng = random.Random(3)
    assert rounds == [round_order(list("abcd"), i, "shuffle", rng) for i in range(5)]


def test_on_turn_is_called_after_every_turn_and_an_unknown_order_is_refused():
    seen: list[str] = []
    time_interleaved({"x": lambda: [1.0], "y": lambda: [2.0]}, rounds=3, on_turn=seen.append)
    assert sorted(seen) == ["x"] * 3 + ["y"] * 3
    with pytest.raises(ValueError, match="rotate, shuffle"):
        time_interleaved({"x": lambda: [1.0]}, rounds=1, order="random")
    assert time_interleaved({}, rounds=3).samples == {}


def test_runner_process_times_inferences_in_its_own_worker():
    job = CaseJob(kind=EAGER, model="mobilenet_v3_small_075", resolution=96, threads=1)
    with RunnerProcess(job) as worker:
        worker.wait_ready()
        times = time_interleaved({"eager": lambda: worker.turn(2)}, rounds=2)
    assert len(times.samples["eager"]) == 4 and all(ms > 0 for ms in times.samples["eager"])
