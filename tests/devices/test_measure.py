"""The adaptive measuring policy, driven by synthetic per-run times (nothing is slept or timed)."""

from __future__ import annotations

import pytest

from mobexport.devices.measure import MeasurePolicy, time_adaptively


class FakeRunner:
    """Returns ``per_run`` seconds per inference (a list is consumed, then its last value repeats)."""

    def __init__(self, per_run):
        self.per_run = list(per_run) if isinstance(per_run, list) else [per_run]
        self.calls: list[int] = []

    def chunk(self, n: int) -> list[float]:
        self.calls.append(n)
        out = []
        for _ in range(n):
            out.append(self.per_run.pop(0) if len(self.per_run) > 1 else self.per_run[0])
        return out


def test_fast_model_collects_samples_until_min_time():
    runner = FakeRunner(0.002)
    policy = MeasurePolicy(min_time_s=1.0, min_iters=10, max_iters=10_000, warmup_time_s=0.1, min_warmup=3)
    timing = time_adaptively(runner.chunk, policy)
    assert timing.warmup == 50                        # 0.1 s of 2 ms runs
    assert sum(timing.samples_s) == pytest.approx(1.0, abs=0.002)
    assert timing.iters == 500
    assert max(runner.calls) <= 250                    # chunks of about 0.5 s, not one huge call


def test_slow_model_is_held_to_min_iters_not_min_time():
    runner = FakeRunner(0.4)
    policy = MeasurePolicy(min_time_s=1.0, min_iters=10, warmup_time_s=0.5, min_warmup=3)
    timing = time_adaptively(runner.chunk, policy)
    assert timing.warmup == 3                          # min_warmup already exceeds warmup_time
    assert timing.iters == 10                          # 4 s measured: min_iters dominates


def test_max_iters_caps_a_very_fast_model():
    timing = time_adaptively(FakeRunner(1e-6).chunk, MeasurePolicy(min_time_s=5.0, max_iters=300, min_iters=10))
    assert timing.iters == 300


def test_warmup_is_capped_and_excluded_from_samples():
    runner = FakeRunner([1.0] * 3 + [0.01] * 10_000)    # three cold runs, then fast
    policy = MeasurePolicy(min_time_s=0.5, min_iters=10, warmup_time_s=0.2, min_warmup=3, max_warmup=5)
    timing = time_adaptively(runner.chunk, policy)
    assert timing.warmup == 3 and timing.warmup_s == pytest.approx(3.0)
    assert max(timing.samples_s) == pytest.approx(0.01)


def test_no_warmup_asked_still_measures():
    timing = time_adaptively(FakeRunner(0.1).chunk, MeasurePolicy(min_time_s=0.0, min_iters=4, warmup_time_s=0.0,
                                                                   min_warmup=0, max_warmup=0))
    assert timing.warmup == 0 and timing.iters == 4


def test_counts_for_a_known_per_run_time():
    policy = MeasurePolicy(min_time_s=2.0, min_iters=10, max_iters=1000, warmup_time_s=0.5, min_warmup=3, max_warmup=50)
    assert policy.counts_for(0.01) == (50, 200)
    assert policy.counts_for(0.5) == (3, 10)
    assert policy.counts_for(1e-7) == (50, 1000)


@pytest.mark.parametrize("kwargs", [dict(min_iters=0), dict(min_iters=20, max_iters=10), dict(min_time_s=-1),
                                    dict(min_warmup=5, max_warmup=2)])
def test_inconsistent_policies_are_refused(kwargs):
    with pytest.raises(ValueError):
        MeasurePolicy(**kwargs)


def test_policy_round_trips_through_a_dict():
    policy = MeasurePolicy(min_time_s=0.3, min_iters=7)
    assert MeasurePolicy.from_dict(policy.to_dict()) == policy
