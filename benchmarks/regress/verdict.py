"""The regression verdict: did a curve point get slower than its baseline?

What is compared. In *relative* mode (the default) a point's latency is
divided by the reference model's (MobileNetV3-Large) measured in the same run
at the same setting and resolution, and the change is

    ratio = (cur_model / cur_reference) / (base_model / base_reference)

of medians, so a machine that is uniformly faster or slower cancels out. In
*absolute* mode the change is ``cur_model / base_model`` (dedicated devices).

When it counts. A point regresses only when both hold:

* the estimated slowdown reaches the minimum effect: ``ratio >= 1 + min_effect``;
* the samples support it: the lower bound of a bootstrap confidence interval
  of the ratio is above 1.

A CI job fails when *any* point regresses, so the intervals are corrected for
comparing many points at once (Bonferroni): with ``m`` points judged, each
interval has level ``1 - (1 - confidence) / m``, which bounds the chance that
a run with no change raises an alarm anywhere by ``1 - confidence``.

The interval resamples each of the (two or four) sample sets independently
with replacement, recomputes the ratio of medians, and takes percentiles.
Why a bootstrap of medians rather than a rank test: medians shrug off the
scheduler hiccups that dominate a shared machine's tail; the ratio is exactly
the quantity the threshold is stated in; and a rank test cannot express the
reference normalisation (a ratio of ratios across four independent sample
sets), whereas the bootstrap handles it the same way as the plain ratio. The
random generator is seeded from a fixed seed and the case's identity, so the
same files always give the same verdict, and a point's resamples do not
depend on which other points are compared.

Run-to-run variation. The samples of one run show how much single
inferences vary, not how much a whole run does (another job starting on a
shared machine slows every inference of a case at once). A baseline made
from several runs of the sweep shows it: for such a point the estimate is
taken against the geometric mean of the baseline runs' (normalised) medians,
and the interval is the Student-t prediction interval of one new run,
``exp(+-t(k-1) s sqrt(1 + 1/k))`` around it (``s``: the standard deviation of
the k runs' log values). Six runs estimate one point's spread poorly, so the
spread pooled over all points of the baseline (the machine's, with many more
degrees of freedom) is used too, and the wider interval wins; it is never
narrower than the bootstrap interval either. A noisy machine then yields
"inconclusive" instead of a false alarm.

Improvements are the mirror image (``ratio <= 1 / (1 + min_effect)`` and the
interval below 1) and never fail a run. A case that measured in the baseline
and failed now fails the run. MACs and parameter counts are compared exactly
and reported; they do not decide the verdict.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass, field
from enum import Enum

import numpy as np

from mobexport.errors import BenchmarkError

from mobexport.benchmarks.results.change_intervals import bootstrap_ratio_of_medians, point_level, prediction_half_width
from mobexport.benchmarks.results.curves import CurvePoint, reference_case, sort_key
from mobexport.benchmarks.results.records import CaseKey
from mobexport.benchmarks.results.stats import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED

DEFAULT_REFERENCE = "mobilenet_v3_large_100"
DEFAULT_MIN_EFFECT = 0.10
MODES = ("relative", "absolute")


class Status(str, Enum):
    REGRESSED = "regressed"        # slower beyond the minimum effect, supported by the samples
    IMPROVED = "improved"          # faster beyond the minimum effect, supported by the samples
    UNCHANGED = "unchanged"        # within the minimum effect
    INCONCLUSIVE = "inconclusive"  # beyond the minimum effect, but the samples do not support it
    FAILED = "failed"              # measured in the baseline, failed now
    MISSING = "missing"            # in the baseline, not measured now
    NEW = "new"                    # measured now, not in the baseline
    REFERENCE = "reference"        # the reference model itself (relative mode): shows the machine's speed change
    RUNTIME_CHANGED = "runtime changed"  # instructions: counted with another runtime/valgrind version, not judged

    @property
    def fails_run(self) -> bool:
        return self in (Status.REGRESSED, Status.FAILED)


@dataclass(frozen=True)
class RegressionSettings:
    mode: str = "relative"
    reference: str = DEFAULT_REFERENCE
    min_effect: float = DEFAULT_MIN_EFFECT
    confidence: float = 0.95
    resamples: int = BOOTSTRAP_RESAMPLES
    seed: int = BOOTSTRAP_SEED

    def __post_init__(self):
        if self.mode not in MODES:
            raise BenchmarkError(f"unknown mode '{self.mode}'", f"use one of: {', '.join(MODES)}")
        if not 0 <= self.min_effect < 10:
            raise BenchmarkError(f"minimum effect {self.min_effect} is out of range", "e.g. --min-effect 0.10 for 10%")
        if not 0.5 <= self.confidence < 1:
            raise BenchmarkError(f"confidence {self.confidence} is out of range", "e.g. --confidence 0.95")
        if self.resamples < 100:
            raise BenchmarkError(f"{self.resamples} bootstrap resamples are too few", "use at least 100 (default 2000)")

    @property
    def relative(self) -> bool:
        return self.mode == "relative"


@dataclass(frozen=True)
class PointComparison:
    """One curve point, baseline against current. ``value`` is the normalised
    latency in relative mode and milliseconds in absolute mode."""

    case: CaseKey
    status: Status
    baseline_ms: float | None = None
    current_ms: float | None = None
    baseline_value: float | None = None
    current_value: float | None = None
    ratio: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    baseline_macs: int | None = None
    current_macs: int | None = None
    baseline_params: int | None = None
    current_params: int | None = None
    baseline_runs: int = 1  # runs in the baseline behind this point (2+: run-to-run interval)
    note: str = ""

    @property
    def change(self) -> float | None:
        """Relative change of the compared value: +0.30 is 30% slower."""
        return None if self.ratio is None else self.ratio - 1.0

    @property
    def macs_changed(self) -> bool:
        return _changed(self.baseline_macs, self.current_macs)

    @property
    def params_changed(self) -> bool:
        return _changed(self.baseline_params, self.current_params)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["status"] = self.status.value
        return d


def _changed(before: int | None, after: int | None) -> bool:
    return before is not None and after is not None and before != after


@dataclass(frozen=True)
class RegressionReport:
    """The finished verdict of :func:`compare`: per-point statuses, the warnings, and the exit status."""

    settings: RegressionSettings
    points: list[PointComparison]
    baseline_provenance: dict = field(default_factory=dict)
    current_provenance: dict = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    point_confidence: float = 0.95  # each point's interval level after the multiple-comparison correction
    run_spread: tuple[float, int] | None = None  # pooled log sd of the baseline's runs and its degrees of freedom
    baseline_runs: int = 1
    # Latency verdicts are shown but do not fail the run (baseline from another device, --on-other-device warn).
    latency_advisory: bool = False

    def detectable_change(self) -> float | None:
        """The smallest slowdown factor a multi-run baseline can tell from its own
        run-to-run variation (at the point level used), or None for a one-run baseline."""
        if self.run_spread is None:
            return None
        sd, df = self.run_spread
        return math.exp(prediction_half_width(sd, df, self.baseline_runs, self.point_confidence))

    def with_status(self, *statuses: Status) -> list[PointComparison]:
        return [p for p in self.points if p.status in statuses]

    @property
    def regressions(self) -> list[PointComparison]:
        return [p for p in self.points if p.status.fails_run]

    @property
    def cost_changes(self) -> list[PointComparison]:
        return [p for p in self.points if p.macs_changed or p.params_changed]

    @property
    def exit_status(self) -> int:
        failing = [p for p in self.regressions if not (self.latency_advisory and p.status is Status.REGRESSED)]
        return 1 if failing else 0

    def machine_factor(self) -> float | None:
        """Median over resolutions of current/baseline reference latency (relative mode)."""
        ratios = [p.ratio for p in self.with_status(Status.REFERENCE) if p.ratio is not None]
        return float(np.median(ratios)) if ratios else None


def classify(ratio: float, low: float, high: float, min_effect: float) -> Status:
    """The verdict from an estimated ratio and its interval (see the module docstring)."""
    if ratio >= 1 + min_effect:
        return Status.REGRESSED if low > 1 else Status.INCONCLUSIVE
    if ratio <= 1 / (1 + min_effect):
        return Status.IMPROVED if high < 1 else Status.INCONCLUSIVE
    return Status.UNCHANGED


def _rng_for(case: CaseKey, seed: int) -> np.random.Generator:
    """A generator that depends only on the seed and the case, never on what else is compared."""
    return np.random.default_rng([seed, zlib.crc32(repr(sort_key(case)).encode())])


ON_OTHER_DEVICE = ("judge", "warn")  # what a baseline from another device means for latency verdicts
FINGERPRINT_KEYS = ("name", "cpu", "cpu_id", "isa", "cores", "machine", "model", "soc", "abi", "gpu")


def device_fingerprints(provenance: dict) -> list[dict]:
    """What decides a device's relative speeds: its name, CPU and ISA, core count (not the OS build or a pinned list)."""
    return [{k: d[k] for k in FINGERPRINT_KEYS if k in d} for d in provenance.get("devices") or []]


def other_device_policy(baseline_provenance: dict, current_provenance: dict, settings: RegressionSettings,
                        on_other_device: str) -> tuple[bool, list[str]]:
    """(latency verdicts are advisory, warnings) when the two sides were measured on different devices.

    ``warn``: latency changes are reported but do not fail the run. ``judge``:
    they count; in absolute mode a warning says a machine difference is a change.
    """
    if on_other_device not in ON_OTHER_DEVICE:
        raise BenchmarkError(f"unknown --on-other-device '{on_other_device}'", f"use one of: {', '.join(ON_OTHER_DEVICE)}")
    if device_fingerprints(baseline_provenance) == device_fingerprints(current_provenance):
        return False, []
    if on_other_device == "warn":
        return True, ["the baseline was measured on another device: latency changes are reported, not "
                      "failed (refresh the baseline on this device to judge them)"]
    if not settings.relative:
        return False, ["absolute mode across different device fingerprints: a speed difference between the "
                       "machines counts as a change (use relative mode, or a baseline from this device)"]
    return False, []


def compare(baseline: dict[CaseKey, CurvePoint], current: dict[CaseKey, CurvePoint],
            settings: RegressionSettings = RegressionSettings(), *, baseline_provenance: dict | None = None,
            current_provenance: dict | None = None, on_other_device: str = "judge") -> RegressionReport:
    """Compare every curve point of ``current`` with ``baseline``: the finished verdict.

    The provenances (devices, versions) say where each side was measured; a
    device-fingerprint mismatch is handled by ``on_other_device`` (see
    :func:`other_device_policy`).

    Raises :class:`BenchmarkError` when nothing overlaps, or (relative mode)
    when a compared point's reference measurement is missing on either side.
    """
    overlap = [case for case in current if case in baseline]
    if not overlap:
        raise BenchmarkError(
            f"no case of the results is in the baseline (results: {_some(current)}; baseline: {_some(baseline)})",
            "run the same sweep as the baseline's, or update the baseline",
        )
    if settings.relative:
        _require_references(baseline, current, overlap, settings.reference)

    pooled = pooled_run_spread(baseline, settings)
    judged = [case for case in overlap if current[case].ok and not (settings.relative and case.model == settings.reference)]
    level = point_level(settings.confidence, len(judged))
    comparisons = []
    for case in sorted(set(baseline) | set(current), key=sort_key):
        base, cur = baseline.get(case), current.get(case)
        if cur is None:
            comparisons.append(PointComparison(case, Status.MISSING, baseline_ms=base.median_ms,
                                               baseline_macs=base.macs, baseline_params=base.params))
        elif base is None:
            comparisons.append(PointComparison(case, Status.NEW, current_ms=cur.median_ms if cur.ok else None,
                                               current_macs=cur.macs, current_params=cur.params,
                                               note="" if cur.ok else f"failed: {cur.error or 'unknown error'}"))
        elif not cur.ok:
            comparisons.append(PointComparison(case, Status.FAILED, baseline_ms=base.median_ms,
                                               baseline_macs=base.macs, current_macs=cur.macs,
                                               baseline_params=base.params, current_params=cur.params,
                                               note=cur.error or "unknown error"))
        else:
            comparisons.append(_compare_point(base, cur, baseline, current, settings, level, pooled))
    runs = max((p.baseline_runs for p in comparisons), default=1)
    baseline_provenance, current_provenance = baseline_provenance or {}, current_provenance or {}
    advisory, warnings = other_device_policy(baseline_provenance, current_provenance, settings, on_other_device)
    return RegressionReport(settings, comparisons, baseline_provenance=baseline_provenance,
                            current_provenance=current_provenance, warnings=tuple(warnings),
                            point_confidence=level, run_spread=pooled, baseline_runs=runs, latency_advisory=advisory)


def _compare_point(base: CurvePoint, cur: CurvePoint, baseline: dict, current: dict,
                   settings: RegressionSettings, level: float, pooled: tuple[float, int] | None = None
                   ) -> PointComparison:
    rng = _rng_for(cur.case, settings.seed)
    costs = dict(baseline_macs=base.macs, current_macs=cur.macs, baseline_params=base.params,
                 current_params=cur.params)
    is_reference = settings.relative and cur.case.model == settings.reference
    base_ref = cur_ref = None
    if settings.relative and not is_reference:
        ref_case = reference_case(cur.case, settings.reference)
        base_ref, cur_ref = baseline[ref_case], current[ref_case]
    ratio, low, high = bootstrap_ratio_of_medians(
        cur.samples(), base.samples(), rng, cur_ref.samples() if cur_ref else None,
        base_ref.samples() if base_ref else None, level, settings.resamples)
    base_value = base.median_ms / base_ref.median_ms if base_ref else base.median_ms
    cur_value = cur.median_ms / cur_ref.median_ms if cur_ref else cur.median_ms
    base_ms, runs = base.median_ms, 1

    per_run = _run_values(base, base_ref)
    if len(per_run) >= 2:  # the baseline shows how much whole runs vary: judge against that
        runs = len(per_run)
        within = (np.log(ratio / low), np.log(high / ratio))
        base_value = float(np.exp(np.mean(np.log(per_run))))
        if not base_ref:
            base_ms = base_value
        ratio = cur_value / base_value
        k, logs = len(per_run), np.log(per_run)
        half = prediction_half_width(float(np.std(logs, ddof=1)), k - 1, k, level)
        if pooled is not None:  # the machine's spread over all points: steadier than one point's k runs
            half = max(half, prediction_half_width(pooled[0], pooled[1], k, level))
        low, high = ratio * float(np.exp(-max(half, within[0]))), ratio * float(np.exp(max(half, within[1])))
    status = Status.REFERENCE if is_reference else classify(ratio, low, high, settings.min_effect)
    return PointComparison(cur.case, status, baseline_ms=base_ms, current_ms=cur.median_ms,
                           baseline_value=base_value, current_value=cur_value, ratio=ratio, ci_low=low, ci_high=high,
                           baseline_runs=runs, **costs)


def _run_values(base: CurvePoint, base_ref: CurvePoint | None) -> list[float]:
    """Each baseline run's median (divided by the same run's reference median in relative mode)."""
    medians = base.run_medians()
    if base_ref is None:
        return [medians[run] for run in sorted(medians)]
    ref_medians = base_ref.run_medians()
    return [medians[run] / ref_medians[run] for run in sorted(medians) if run in ref_medians]


def pooled_run_spread(baseline: dict[CaseKey, CurvePoint], settings: RegressionSettings) -> tuple[float, int] | None:
    """Standard deviation of a run's log value around its point's mean, pooled over every
    multi-run point of the baseline, and its degrees of freedom (None without such points)."""
    squares, df = 0.0, 0
    for case, point in baseline.items():
        if settings.relative and case.model == settings.reference:
            continue
        ref = baseline.get(reference_case(case, settings.reference)) if settings.relative else None
        if settings.relative and ref is None:
            continue
        logs = np.log(_run_values(point, ref))
        if logs.size >= 2:
            squares += float(np.sum((logs - logs.mean()) ** 2))
            df += logs.size - 1
    return (math.sqrt(squares / df), df) if df else None


def _require_references(baseline: dict, current: dict, overlap: list[CaseKey], reference: str) -> None:
    for side, points in (("results", current), ("baseline", baseline)):
        models = sorted({case.model for case in points})
        if reference not in models:
            others = [m for m in models if m != reference]
            raise BenchmarkError(
                f"the reference model {reference} is not in the {side} (it has {', '.join(models) or 'no model'}), "
                "and relative mode divides every latency by it",
                f"add it to the sweep (mobexport bench --models {','.join(others[:2] + [reference])} ...)"
                + (" and update the baseline from those results" if side == "baseline" else "")
                + f", or use --reference {others[0] if others else 'MODEL'} or --mode absolute",
            )
    missing = []
    for case in overlap:
        if case.model == reference or not current[case].ok:
            continue
        ref = reference_case(case, reference)
        for side, points in (("baseline", baseline), ("results", current)):
            if ref not in points or not points[ref].ok:
                missing.append(f"{ref.label()} in the {side}")
    if missing:
        unique = sorted(set(missing))
        shown = ", ".join(unique[:4]) + (f" and {len(unique) - 4} more" if len(unique) > 4 else "")
        raise BenchmarkError(
            f"relative mode needs the reference model measured alongside each case; missing: {shown}",
            f"include {reference} in the sweep, pick another with --reference, or use --mode absolute",
        )


def _some(points: dict, limit: int = 3) -> str:
    labels = sorted(case.label() for case in points)
    return ", ".join(labels[:limit]) + (f" and {len(labels) - limit} more" if len(labels) > limit else "") or "none"
