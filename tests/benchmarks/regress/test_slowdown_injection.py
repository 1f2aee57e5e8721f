"""The slowdown injection used to validate regression tracking: parsing, matching, exact waits, the worker."""

from __future__ import annotations

import json

import pytest

from mobexport.benchmarks.regress import slowdown_injection as inj
from mobexport.errors import BenchmarkError


def test_parse_and_match():
    items = inj.parse_injections(" mobile_former_52m@160=0.15, *@224=0.3 ,mobile_former_294m=0.2,")
    assert items == [inj.Injection("mobile_former_52m", 160, 0.15), inj.Injection("*", 224, 0.3),
                     inj.Injection("mobile_former_294m", None, 0.2)]
    assert inj.fraction_for(items, "mobile_former_52m", 160) == 0.15
    assert inj.fraction_for(items, "mobile_former_52m", 224) == 0.3
    assert inj.fraction_for(items, "mobile_former_294m", 224) == 0.2  # the last match wins
    assert inj.fraction_for(items, "mobilenet_v3_large_100", 160) == 0.0
    assert inj.parse_injections("") == []


@pytest.mark.parametrize("bad", ["a@x=0.1", "a@160", "a@160=0.1=2", "a@160=fast", "a@160=20"])
def test_malformed_specs_are_refused(bad):
    with pytest.raises(BenchmarkError, match=inj.ENV_VAR):
        inj.parse_injections(bad)


class FakeClock:
    """perf_counter/sleep on a simulated clock: each read costs 1 us, sleep overshoots by 60 us."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        self.now += 1e-6
        return self.now

    def sleep(self, seconds):
        self.now += seconds + 60e-6


def test_slowed_inference_lasts_one_plus_fraction_times_as_long(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(inj.time, "perf_counter", clock.perf_counter)
    monkeypatch.setattr(inj.time, "sleep", clock.sleep)

    def infer(x):
        clock.now += 0.004  # a 4 ms inference
        return x * 2

    slow = inj.slowed(infer, 0.15)
    start = clock.now
    assert slow(21) == 42
    elapsed = clock.now - start
    assert elapsed == pytest.approx(0.004 * 1.15, abs=5e-6)  # the sleep's overshoot is absorbed by the spin


def test_apply_to_runner_only_for_matching_cases():
    class Runner:
        def infer(self, x):
            return x

    env = {inj.ENV_VAR: "mobile_former_52m@160=0.25"}
    matching, other = Runner(), Runner()
    assert inj.apply_to_runner(matching, "mobile_former_52m", 160, env) == 0.25
    assert inj.apply_to_runner(other, "mobile_former_52m", 192, env) == 0.0
    assert "infer" in vars(matching) and "infer" not in vars(other)
    assert inj.apply_to_runner(Runner(), "mobile_former_52m", 160, {}) == 0.0


def test_worker_applies_and_records_the_injection(tmp_path, monkeypatch):
    from mobexport.devices import case_worker
    from mobexport.devices.device import CaseJob
    from mobexport.devices.measure import MeasurePolicy

    policy = MeasurePolicy(min_time_s=0.0, min_iters=3, max_iters=3, warmup_time_s=0.0, min_warmup=1, max_warmup=1)
    job = CaseJob(kind="pytorch", model="mobilenet_v3_small_100", resolution=96, policy=policy)
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps({"job": job.to_dict(), "device": "cpu", "cpus": None, "runtime_options": {}}))
    original = case_worker.build_runner

    monkeypatch.setenv(inj.ENV_VAR, "mobilenet_v3_small_100@96=0.5")
    assert inj.main([str(job_file), str(tmp_path / "slowed.json")]) == 0
    slowed = json.loads((tmp_path / "slowed.json").read_text())
    assert slowed["ok"] and len(slowed["samples_s"]) == 3
    assert slowed["conditions"]["injected_slowdown"] == 0.5
    assert case_worker.build_runner is original  # the worker's own code is left as it was

    monkeypatch.setenv(inj.ENV_VAR, "mobilenet_v3_small_100@128=0.5")
    assert inj.main([str(job_file), str(tmp_path / "plain.json")]) == 0
    assert "injected_slowdown" not in json.loads((tmp_path / "plain.json").read_text())["conditions"]


def test_the_worker_command_answers_help_and_refuses_a_wrong_command_line(capsys):
    assert inj.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m mobexport.benchmarks.regress.slowdown_injection JOB RESULT")
    assert inj.ENV_VAR in out
    assert inj.main(["only-one"]) == 2
