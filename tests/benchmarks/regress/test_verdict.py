"""The regression verdict on synthetic runs: what must be flagged, and what must not."""

from __future__ import annotations

import pytest

from mobexport.benchmarks.results.curves import points_from_records
from mobexport.benchmarks.results.records import CaseKey
from mobexport.benchmarks.regress.verdict import RegressionSettings, Status, classify, compare
from mobexport.errors import BenchmarkError

REFERENCE = "mobilenet_v3_large_100"
RELATIVE = RegressionSettings(mode="relative")
ABSOLUTE = RegressionSettings(mode="absolute")


def points(synthetic, **kwargs):
    return points_from_records(synthetic(**kwargs))


def verdicts(report):
    return {(p.case.model, p.case.resolution): p.status for p in report.points}


def flagged(report):
    return sorted((p.case.model, p.case.resolution) for p in report.regressions)


def test_injected_slowdown_is_flagged_at_exactly_the_affected_points(synthetic):
    base = points(synthetic, seed=0)
    current = points(synthetic, seed=1, slowdown={("mobile_former_52m", 192): 1.30, ("mobile_former_294m", 224): 1.30})
    for settings in (RELATIVE, ABSOLUTE):
        report = compare(base, current, settings)
        assert flagged(report) == [("mobile_former_294m", 224), ("mobile_former_52m", 192)], settings.mode
        assert report.exit_status == 1
        slowed = next(p for p in report.points if (p.case.model, p.case.resolution) == ("mobile_former_52m", 192))
        assert 1.2 < slowed.ratio < 1.4 and slowed.ci_low > 1
        assert all(s in (Status.UNCHANGED, Status.REFERENCE) for key, s in verdicts(report).items()
                   if key not in {("mobile_former_52m", 192), ("mobile_former_294m", 224)})


def test_identical_rerun_passes(synthetic):
    base = points(synthetic, seed=0)
    report = compare(base, points(synthetic, seed=0), RELATIVE)
    assert report.exit_status == 0
    assert all(p.ratio == pytest.approx(1.0) for p in report.points)
    assert {p.status for p in report.points} == {Status.UNCHANGED, Status.REFERENCE}


def test_uniformly_slower_machine_passes_relative_and_fails_absolute(synthetic):
    base = points(synthetic, seed=0)
    slow_machine = points(synthetic, seed=1, machine=2.0)
    relative = compare(base, slow_machine, RELATIVE)
    assert relative.exit_status == 0
    assert relative.machine_factor() == pytest.approx(2.0, rel=0.05)
    assert all(p.status is Status.UNCHANGED for p in relative.points if p.case.model != REFERENCE)
    assert all(p.status is Status.REFERENCE for p in relative.points if p.case.model == REFERENCE)

    absolute = compare(base, slow_machine, ABSOLUTE)
    assert absolute.exit_status == 1
    assert len(absolute.regressions) == len(absolute.points) == 9


def test_uniformly_faster_machine_is_improvement_in_absolute_mode_only(synthetic):
    base = points(synthetic, seed=0)
    fast = points(synthetic, seed=2, machine=0.5)
    assert {p.status for p in compare(base, fast, ABSOLUTE).points} == {Status.IMPROVED}
    assert compare(base, fast, RELATIVE).exit_status == 0


@pytest.mark.parametrize("cv", [0.05, 0.10])
@pytest.mark.parametrize("seeds", [(0, 1), (2, 3), (4, 5), (6, 7)])
def test_noise_only_differences_pass(synthetic, cv, seeds):
    base = points(synthetic, seed=seeds[0], cv=cv)
    current = points(synthetic, seed=seeds[1], cv=cv)
    for settings in (RELATIVE, ABSOLUTE):
        report = compare(base, current, settings)
        assert report.exit_status == 0, [(p.case.label(), p.ratio, p.ci_low) for p in report.regressions]
        assert all(abs(p.change) < 0.1 for p in report.points)


def test_slowdown_below_min_effect_is_not_a_regression_even_when_significant(synthetic):
    pair = ["mobile_former_52m", REFERENCE]
    base = points(synthetic, seed=0, cv=0.02, samples=120, models=pair)
    current = points(synthetic, seed=1, cv=0.02, samples=120, models=pair, slowdown={("mobile_former_52m", 160): 1.06})
    report = compare(base, current, RELATIVE)
    point = next(p for p in report.points if (p.case.model, p.case.resolution) == ("mobile_former_52m", 160))
    assert point.ci_low > 1  # statistically clear...
    assert point.status is Status.UNCHANGED  # ...but smaller than the 10% that matters
    tighter = compare(base, current, RegressionSettings(min_effect=0.03))
    assert flagged(tighter) == [("mobile_former_52m", 160)]


def test_large_change_from_too_few_noisy_samples_is_inconclusive(synthetic):
    base = points(synthetic, seed=0, cv=0.6, samples=4)
    current = points(synthetic, seed=1, cv=0.6, samples=4, slowdown={("mobile_former_52m", 160): 1.2})
    report = compare(base, current, ABSOLUTE)
    inconclusive = report.with_status(Status.INCONCLUSIVE)
    assert inconclusive, [(p.case.label(), p.ratio, p.ci_low) for p in report.points]
    assert all(p.ci_low <= 1 <= p.ci_high for p in inconclusive)
    assert not any(p.status is Status.REGRESSED and p.ci_low <= 1 for p in report.points)


def test_verdicts_are_deterministic_and_independent_of_other_points(synthetic):
    base = points(synthetic, seed=0)
    current = points(synthetic, seed=1, slowdown={("mobile_former_52m", 192): 1.3})
    first = compare(base, current, RELATIVE)
    again = compare(base, current, RELATIVE)
    assert [p.to_dict() for p in first.points] == [p.to_dict() for p in again.points]
    # Dropping unrelated models leaves the remaining estimates as they were; their intervals
    # only narrow, since fewer points are judged (the multiple-comparison correction).
    keep = {k: v for k, v in current.items() if k.model in ("mobile_former_52m", REFERENCE)}
    subset = compare(base, keep, RELATIVE)
    assert (first.point_confidence, subset.point_confidence) == (pytest.approx(1 - 0.05 / 6), pytest.approx(1 - 0.05 / 3))
    by_case = {p.case: p for p in first.points}
    for p in subset.points:
        if p.status is not Status.MISSING:
            whole = by_case[p.case]
            assert p.ratio == whole.ratio
            assert whole.ci_low <= p.ci_low <= p.ratio <= p.ci_high <= whole.ci_high


def test_macs_and_params_changes_are_reported_exactly(synthetic):
    base = points(synthetic, seed=0)
    current = points(synthetic, seed=0, macs_scale={("mobile_former_294m", 224): 1.0 + 1 / 286_700_000})
    report = compare(base, current, RELATIVE)
    changed = report.cost_changes
    assert [(p.case.model, p.case.resolution) for p in changed] == [("mobile_former_294m", 224)]
    assert (changed[0].baseline_macs, changed[0].current_macs) == (286_700_000, 286_700_001)
    assert not changed[0].params_changed
    assert report.exit_status == 0  # cost changes are reported, not judged


def test_failed_missing_and_new_cases(synthetic):
    base_records = synthetic(seed=0)
    current_records = synthetic(seed=1, resolutions=(160, 192, 256))
    for r in current_records:
        if (r.case.model, r.case.resolution) == ("mobile_former_294m", 192):
            r.status, r.error, r.samples_ms = "failed", "ORT crashed", []
    report = compare(points_from_records(base_records), points_from_records(current_records), RELATIVE)
    v = verdicts(report)
    assert v[("mobile_former_294m", 192)] is Status.FAILED
    assert v[("mobile_former_52m", 224)] is Status.MISSING
    assert v[("mobile_former_52m", 256)] is Status.NEW
    assert [p.case.label() for p in report.regressions] == ["mobile_former_294m/onnx@192"]
    assert report.exit_status == 1


def test_a_later_successful_retry_of_a_case_wins(synthetic):
    records = synthetic(seed=0, models=["mobile_former_52m"], resolutions=(160,))
    failed = synthetic(seed=0, models=["mobile_former_52m"], resolutions=(160,))[0]
    failed.status, failed.samples_ms = "failed", []
    assert points_from_records([failed, *records])[records[0].case].ok
    assert points_from_records([*records, failed])[records[0].case].ok


def test_reference_missing_in_relative_mode_is_an_error(synthetic):
    base = points(synthetic, seed=0)
    without_ref = points(synthetic, seed=1, models=["mobile_former_52m", "mobile_former_294m"])
    with pytest.raises(BenchmarkError, match="reference model mobilenet_v3_large_100 is not in the results"):
        compare(base, without_ref, RELATIVE)
    with pytest.raises(BenchmarkError, match="reference model mobile_former_26m is not in the results"):
        compare(base, points(synthetic, seed=1), RegressionSettings(reference="mobile_former_26m"))
    assert compare(base, without_ref, ABSOLUTE).exit_status == 0


def test_no_overlapping_cases_is_an_error(synthetic):
    base = points(synthetic, seed=0, resolutions=(160,))
    with pytest.raises(BenchmarkError, match="no case of the results is in the baseline"):
        compare(base, points(synthetic, seed=1, resolutions=(224,)), RELATIVE)


def test_classify_rules():
    assert classify(1.3, 1.2, 1.4, 0.1) is Status.REGRESSED
    assert classify(1.3, 0.95, 1.6, 0.1) is Status.INCONCLUSIVE
    assert classify(1.05, 1.01, 1.09, 0.1) is Status.UNCHANGED
    assert classify(0.8, 0.7, 0.9, 0.1) is Status.IMPROVED
    assert classify(0.8, 0.6, 1.1, 0.1) is Status.INCONCLUSIVE
    assert classify(1.1, 1.05, 1.15, 0.1) is Status.REGRESSED  # the threshold itself counts


def test_bad_settings_are_errors():
    for kwargs in ({"mode": "fastest"}, {"min_effect": -0.1}, {"confidence": 1.5}, {"resamples": 10}):
        with pytest.raises(BenchmarkError):
            RegressionSettings(**kwargs)


def test_reference_rows_show_the_machine_speed_not_a_verdict(synthetic):
    report = compare(points(synthetic, seed=0), points(synthetic, seed=1, machine=1.5), RELATIVE)
    refs = report.with_status(Status.REFERENCE)
    assert [p.case.resolution for p in refs] == [160, 192, 224]
    assert all(p.ratio == pytest.approx(1.5, rel=0.06) for p in refs)
    assert isinstance(refs[0].case, CaseKey)


def _multi_run_baseline(synthetic, runs: int, **kwargs):
    from mobexport.benchmarks.regress.baseline import Baseline

    return Baseline.from_runs([(None, synthetic(seed=100 + i, **kwargs)) for i in range(runs)], name="b").points


def test_run_to_run_drift_fools_a_single_run_baseline_but_not_a_multi_run_one(synthetic):
    """Whole cases slowed at random by other jobs (drift): one run's samples cannot show it."""
    noisy = dict(drift=0.15, samples=30)
    single = points(synthetic, seed=100, **noisy)
    multi = _multi_run_baseline(synthetic, 6, **noisy)
    single_alarms = multi_alarms = 0
    for seed in range(6):
        current = points(synthetic, seed=seed, **noisy)
        single_alarms += bool(compare(single, current, RELATIVE).regressions)
        report = compare(multi, current, RELATIVE)
        multi_alarms += bool(report.regressions)
        assert all(p.baseline_runs == 6 for p in report.points if p.ratio is not None)
    assert single_alarms >= 4  # the failure mode measured on a shared CI machine
    assert multi_alarms == 0


def test_multi_run_baseline_still_catches_a_large_slowdown(synthetic):
    quiet = dict(drift=0.05, samples=30)
    multi = _multi_run_baseline(synthetic, 6, **quiet)
    current = points(synthetic, seed=7, slowdown={("mobile_former_294m", 192): 1.6}, **quiet)
    report = compare(multi, current, RELATIVE)
    assert flagged(report) == [("mobile_former_294m", 192)]
    assert report.detectable_change() < 1.6
    assert compare(multi, points(synthetic, seed=8, machine=2.0, **quiet), RELATIVE).exit_status == 0


def test_multi_run_interval_is_never_narrower_than_the_samples_allow(synthetic):
    from dataclasses import replace

    from mobexport.benchmarks.regress.baseline import Baseline

    same = synthetic(seed=0)
    multi = Baseline.from_runs([(None, same), (None, same), (None, same)], name="b").points  # no run-to-run spread
    pooled_single_run = {case: replace(point, runs=()) for case, point in multi.items()}
    current = points(synthetic, seed=1)
    by_case = {p.case: p for p in compare(pooled_single_run, current, RELATIVE).points}
    for p in compare(multi, current, RELATIVE).points:
        assert p.baseline_runs == 3 and by_case[p.case].baseline_runs == 1
        assert p.ci_low < p.ratio < p.ci_high
        assert p.ci_low == pytest.approx(by_case[p.case].ci_low, rel=1e-9)
        assert p.ci_high == pytest.approx(by_case[p.case].ci_high, rel=1e-9)


LAPTOP = {"devices": [{"name": "local", "cpu": "Intel i7-1185G7", "cores": 8, "os": "Linux 6.1"}]}
LAPTOP_NEW_KERNEL = {"devices": [{"name": "local", "cpu": "Intel i7-1185G7", "cores": 8, "os": "Linux 6.8"}]}
SERVER = {"devices": [{"name": "local", "cpu": "AMD EPYC 9654", "cores": 96}]}


def test_compare_applies_the_other_device_policy_itself(synthetic):
    """The verdict is finished when compare() returns: the CLI no longer edits it."""
    base = points(synthetic, seed=0)
    current = points(synthetic, seed=1, slowdown={("mobile_former_52m", 192): 1.30})
    warned = compare(base, current, RELATIVE, baseline_provenance=LAPTOP, current_provenance=SERVER,
                     on_other_device="warn")
    assert warned.latency_advisory and flagged(warned) == [("mobile_former_52m", 192)]
    assert warned.exit_status == 0 and "another device" in warned.warnings[0]
    assert warned.baseline_provenance == LAPTOP and warned.current_provenance == SERVER

    judged = compare(base, current, RELATIVE, baseline_provenance=LAPTOP, current_provenance=SERVER)
    assert not judged.latency_advisory and judged.exit_status == 1 and judged.warnings == ()
    absolute = compare(base, current, ABSOLUTE, baseline_provenance=LAPTOP, current_provenance=SERVER)
    assert "absolute mode across different device fingerprints" in absolute.warnings[0]

    # The OS build is not part of the fingerprint: same machine, nothing to warn about.
    same = compare(base, current, ABSOLUTE, baseline_provenance=LAPTOP, current_provenance=LAPTOP_NEW_KERNEL,
                   on_other_device="warn")
    assert same.warnings == () and not same.latency_advisory and same.exit_status == 1


def test_the_verdict_cannot_be_edited_after_compare(synthetic):
    import dataclasses

    report = compare(points(synthetic, seed=0), points(synthetic, seed=1), RELATIVE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.latency_advisory = True  # type: ignore[misc]
    with pytest.raises(BenchmarkError, match="on-other-device"):
        compare(points(synthetic, seed=0), points(synthetic, seed=1), RELATIVE, on_other_device="ignore")
