"""Paired latency: time the baseline build's artifacts and the candidate's side by side, in one run.

    mobexport regress --paired BASE_OUT --results CANDIDATE_OUT/results.jsonl [--rounds 5]

Stored baselines compare today's machine with the day the baseline was made;
on a shared host that difference alone is 7-10% per process. Here both builds
are timed now, on the same host, with the same process layout (one worker
process per case, as ``mobexport bench`` does), in ``rounds`` rounds; each
round measures every (case, build) pair once, in a shuffled order, so drift
and neighbours hit both builds alike. A round gives one paired ratio per
case, ``median(candidate) / median(baseline)``; the verdict takes their
geometric mean and its Student-t interval over the rounds (level corrected
for the number of cases, Bonferroni, as for stored baselines), and classifies
it with the same rule: regressed when the ratio is at least ``1 +
min_effect`` and the interval lies above 1.

Which artifacts: the cases measured successfully in both results files, each
record's own artifact path (``artifact.path``), so the two builds may live in
any two ``--out`` folders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from mobexport.errors import BenchmarkError

from mobexport.benchmarks.results.change_intervals import point_level, student_t_quantile
from mobexport.benchmarks.results.curves import sort_key
from mobexport.benchmarks.results.records import BenchRecord, CaseKey, read_records
from mobexport.benchmarks.regress.verdict import PointComparison, Status, classify

DEFAULT_ROUNDS = 5


@dataclass(frozen=True)
class PairedCase:
    case: CaseKey
    baseline_artifact: Path
    candidate_artifact: Path
    manifest_baseline: dict | None = None
    manifest_candidate: dict | None = None


def _artifacts(records: list[BenchRecord]) -> dict[CaseKey, Path]:
    found = {}
    for r in records:
        path = (r.artifact or {}).get("path")
        if r.status == "ok" and path and Path(path).exists():
            found[r.case] = Path(path)
    return found


def pair_cases(baseline_results: Path, candidate_results: Path) -> list[PairedCase]:
    """The cases both builds measured, with their artifacts; a one-line error when none are shared."""
    base, cand = _artifacts(read_records(baseline_results)), _artifacts(read_records(candidate_results))
    shared = sorted(set(base) & set(cand), key=sort_key)
    if not shared:
        raise BenchmarkError(f"no case with an existing artifact is in both '{baseline_results}' and "
                             f"'{candidate_results}'", "run the same sweep for both builds, with the artifacts kept")
    return [PairedCase(case, base[case], cand[case]) for case in shared]


def _manifest(artifact: Path) -> dict | None:
    import json

    path = artifact.parent / "manifest.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def measure_paired(pairs: list[PairedCase], device, policy, rounds: int = DEFAULT_ROUNDS, seed: int = 0,
                   console: Console | None = None) -> dict[CaseKey, list[float]]:
    """Per case, one paired ratio (candidate median / baseline median) per round.

    Every (case, build) is one subject of the interleaved timer, visited in a
    seeded random order each round, so drift and neighbours hit both builds alike.
    """
    from mobexport.devices.device import CaseFailed, CaseJob
    from mobexport.devices.interleaved import time_interleaved

    def turn(pair: PairedCase, side: str):
        artifact = pair.baseline_artifact if side == "baseline" else pair.candidate_artifact
        job = CaseJob(kind=pair.case.target, model=pair.case.model, resolution=pair.case.resolution,
                      batch=pair.case.batch, threads=pair.case.threads, artifact_path=artifact,
                      manifest=_manifest(artifact), policy=policy, label=f"{pair.case.label()} ({side})")

        def measure() -> list[float]:
            try:
                return [float(np.median(device.measure(job).samples_s))]
            except CaseFailed as exc:
                raise BenchmarkError(f"{pair.case.label()} ({side} build) failed: {exc}",
                                     "check that both builds run with 'mobexport bench'") from None
        return measure

    turns = {(pair.case, side): turn(pair, side) for pair in pairs for side in ("baseline", "candidate")}
    taken = [0]

    def after_turn(_key) -> None:
        taken[0] += 1
        if console is not None and taken[0] % len(turns) == 0:
            console.print(f"paired round {taken[0] // len(turns)}/{rounds} done", highlight=False)

    medians = time_interleaved(turns, rounds, order="shuffle", seed=seed, on_turn=after_turn).samples
    return {pair.case: [c / b for c, b in zip(medians[(pair.case, "candidate")], medians[(pair.case, "baseline")])]
            for pair in pairs}


def judge(ratios: dict[CaseKey, list[float]], min_effect: float, confidence: float = 0.95) -> list[PointComparison]:
    """Geometric mean of each case's paired ratios, its t interval over rounds, and the verdict."""
    level = point_level(confidence, len(ratios))
    points = []
    for case in sorted(ratios, key=sort_key):
        logs = np.log(ratios[case])
        mean = float(np.mean(logs))
        if len(logs) >= 2:
            half = student_t_quantile(0.5 + level / 2, len(logs) - 1) * float(np.std(logs, ddof=1)) / math.sqrt(len(logs))
        else:
            half = math.inf  # one round cannot say how much a ratio varies
        ratio, low, high = math.exp(mean), math.exp(mean - half), math.exp(mean + half)
        points.append(PointComparison(case, classify(ratio, low, high, min_effect), ratio=ratio, ci_low=low,
                                      ci_high=high, baseline_runs=len(logs),
                                      note=" ".join(f"{r:.3f}" for r in ratios[case])))
    return points


def print_paired(console: Console, points: list[PointComparison], min_effect: float) -> None:
    table = Table(title="paired latency: candidate / baseline build, timed side by side", title_justify="left")
    for column in ("status", "case", "change", "interval", "per-round ratios"):
        table.add_column(column)
    for p in points:
        table.add_row(p.status.value, p.case.label(), f"{p.ratio - 1:+.1%}", f"{p.ci_low - 1:+.1%}…{p.ci_high - 1:+.1%}",
                      p.note)
    console.print(table)
    failing = [p for p in points if p.status is Status.REGRESSED]
    console.print(f"{len(failing)} case(s) regressed (minimum effect {min_effect:.0%})" if failing
                  else f"no paired-latency regression (minimum effect {min_effect:.0%})", highlight=False)


def run_paired(baseline_out: Path, candidate_results: Path, min_effect: float, confidence: float, rounds: int,
               seed: int, console: Console, device=None, policy=None) -> int:
    """``mobexport regress --paired``: exit 1 when a case regressed, else 0."""
    from mobexport.devices.local import LocalDevice
    from mobexport.devices.measure import MeasurePolicy

    from mobexport.benchmarks.sweep.run import RESULTS_NAME

    baseline_results = Path(baseline_out) / RESULTS_NAME if Path(baseline_out).is_dir() else Path(baseline_out)
    if rounds < 2:
        raise BenchmarkError(f"--rounds {rounds} gives no interval", "use --rounds 2 or more (default 5)")
    pairs = pair_cases(baseline_results, candidate_results)
    ratios = measure_paired(pairs, device or LocalDevice(), policy or MeasurePolicy(min_time_s=0.5), rounds, seed,
                            console)
    points = judge(ratios, min_effect, confidence)
    print_paired(console, points, min_effect)
    return 1 if any(p.status is Status.REGRESSED for p in points) else 0
