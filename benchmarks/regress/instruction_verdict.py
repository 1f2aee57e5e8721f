"""The regression verdict on instruction counts: did a curve point execute more instructions than its baseline?

Noise model. A count is not a sample of a noisy distribution: the same
artifact, runtime and valgrind execute the same instructions but for glibc's
address-dependent paths (``malloc`` free lists, ``memcpy`` alignment), which
move a count by about 0.3% (see :mod:`mobexport.devices.instructions`). So
there is no bootstrap here. A point's change is

    ratio = median(current counts) / median(baseline counts)

and its interval is the whole range the counts allow, ``min(current) /
max(baseline)`` to ``max(current) / min(baseline)`` (every inference and run
of both sides). A point regresses when ``ratio >= 1 + threshold`` (default
2%) and the interval's low end is above 1 (the change is larger than the
counter's own spread); improvements mirror it. The report states the largest
spread it saw, and warns when it is not well below the threshold.

What is not a regression: when valgrind's version, or the version of the
runtime that runs a point's target, differs from the baseline's, a count
measures other code, and the point is reported as ``runtime changed`` with
both versions; it does not fail the check (refresh the baseline with the
upgrade). A case that counted in the baseline and fails now fails the check;
MACs and parameter counts are compared exactly and reported, as for latency.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table

from mobexport.errors import BenchmarkError

from mobexport.benchmarks.results.curves import sort_key
from mobexport.benchmarks.regress.instruction_baseline import RUNTIME_OF_TARGET, InstructionBaseline, InstructionPoint
from mobexport.benchmarks.results.records import CaseKey
from mobexport.benchmarks.regress.verdict import PointComparison, Status, classify

DEFAULT_THRESHOLD = 0.02
SPREAD_WARNING = 0.5  # warn when the counter's spread reaches this share of the threshold


@dataclass
class InstructionReport:
    threshold: float
    points: list[PointComparison]
    spread: float                                 # largest (max - min) / median of any point's counts, both sides
    tool_changes: dict = field(default_factory=dict)  # tool -> (baseline version, current version)
    warnings: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[PointComparison]:
        return [p for p in self.points if p.status.fails_run]

    @property
    def exit_status(self) -> int:
        return 1 if self.regressions else 0

    def to_dict(self) -> dict:
        return {"metric": "instructions", "exit_status": self.exit_status, "threshold": self.threshold,
                "spread": self.spread, "tool_changes": {k: list(v) for k, v in self.tool_changes.items()},
                "warnings": self.warnings, "points": [p.to_dict() for p in self.points]}


def _spread(point: InstructionPoint) -> float:
    samples = point.samples
    return (max(samples) - min(samples)) / point.median if samples and point.median else 0.0


def changed_tools(baseline_versions: dict, current_versions: dict, target: str) -> dict:
    """The tools deciding ``target``'s count whose versions differ: {tool: (before, after)}."""
    tools = ["valgrind"] + ([RUNTIME_OF_TARGET[target]] if target in RUNTIME_OF_TARGET else [])
    return {tool: (baseline_versions.get(tool), current_versions.get(tool)) for tool in tools
            if tool in current_versions and baseline_versions.get(tool) != current_versions.get(tool)}


def compare_instructions(baseline: InstructionBaseline, current: dict[CaseKey, InstructionPoint],
                         current_versions: dict, threshold: float = DEFAULT_THRESHOLD) -> InstructionReport:
    """Every point of ``current`` against ``baseline``; a BenchmarkError when no case is in both."""
    if not 0 < threshold < 10:
        raise BenchmarkError(f"threshold {threshold} is out of range", "e.g. --min-effect 2%")
    base_points = baseline.points
    if not any(case in base_points for case in current):
        raise BenchmarkError("no case of the results is in the instruction baseline",
                             "run the same sweep as the baseline's, or update the baseline")
    comparisons, spreads, tool_changes = [], [], {}
    for case in sorted(set(base_points) | set(current), key=sort_key):
        base, cur = base_points.get(case), current.get(case)
        costs = dict(baseline_macs=base.macs if base else None, current_macs=cur.macs if cur else None,
                     baseline_params=base.params if base else None, current_params=cur.params if cur else None)
        if cur is None:
            comparisons.append(PointComparison(case, Status.MISSING, baseline_value=base.median, **costs))
        elif base is None:
            comparisons.append(PointComparison(case, Status.NEW, current_value=cur.median if cur.ok else None,
                                               note="" if cur.ok else f"failed: {cur.error or 'unknown error'}",
                                               **costs))
        elif not cur.ok:
            comparisons.append(PointComparison(case, Status.FAILED, baseline_value=base.median,
                                               note=cur.error or "unknown error", **costs))
        else:
            spreads += [_spread(base), _spread(cur)]
            ratio = cur.median / base.median
            low, high = min(cur.samples) / max(base.samples), max(cur.samples) / min(base.samples)
            changed = changed_tools(baseline.tool_versions, current_versions, case.target)
            if changed:
                tool_changes.update(changed)
                status = Status.RUNTIME_CHANGED
                note = ", ".join(f"{tool} {before} → {after}" for tool, (before, after) in changed.items())
            else:
                status, note = classify(ratio, low, high, threshold), ""
            comparisons.append(PointComparison(case, status, baseline_value=base.median, current_value=cur.median,
                                               ratio=ratio, ci_low=low, ci_high=high, baseline_runs=len(base.runs),
                                               note=note, **costs))
    spread = max(spreads, default=0.0)
    report = InstructionReport(threshold, comparisons, spread, tool_changes)
    if spread >= SPREAD_WARNING * threshold:
        report.warnings.append(f"the counts' own spread ({spread:.2%}) is not well below the threshold "
                               f"({threshold:.0%}): changes near it are reported as inconclusive")
    if tool_changes:
        report.warnings.append("counted with other tool versions than the baseline (" + ", ".join(
            f"{tool} {before} → {after}" for tool, (before, after) in tool_changes.items()) +
            "): those points measure other code and are not judged; refresh the baseline with "
            "'mobexport regress --metric instructions --update-baseline'")
    return report


MARK = {Status.REGRESSED: "❌ regressed", Status.FAILED: "❌ failed", Status.IMPROVED: "🚀 improved",
        Status.UNCHANGED: "✅ unchanged", Status.INCONCLUSIVE: "⚠️ inconclusive", Status.MISSING: "➖ missing",
        Status.NEW: "🆕 new", Status.RUNTIME_CHANGED: "🔁 runtime changed"}


def _count(value: float | None) -> str:
    return "" if value is None else f"{value / 1e6:,.2f} M"


def _change(p: PointComparison) -> tuple[str, str]:
    if p.ratio is None:
        return "", ""
    return f"{p.ratio - 1:+.2%}", f"{p.ci_low - 1:+.2%}…{p.ci_high - 1:+.2%}"


def _headline(report: InstructionReport) -> str:
    failing = report.regressions
    verdict = (f"{len(failing)} point(s) regressed or failed" if failing else "no instruction-count regression")
    return (f"{verdict}; threshold {report.threshold:.0%} of instructions per inference, the counts' largest "
            f"spread {report.spread:.2%}")


def markdown(report: InstructionReport, baseline_name: str, results_name: str) -> str:
    lines = [f"## Instruction-count regression check: {baseline_name} vs {results_name}", "",
             f"**{_headline(report)}**", ""]
    lines += [f"> {w}" for w in report.warnings] + ([""] if report.warnings else [])
    lines += ["| status | case | baseline | current | change | range | note |", "|---|---|---:|---:|---:|---:|---|"]
    for p in report.points:
        change, interval = _change(p)
        lines.append(f"| {MARK.get(p.status, p.status.value)} | {p.case.label()} | {_count(p.baseline_value)} | "
                     f"{_count(p.current_value)} | {change} | {interval} | {p.note} |")
    return "\n".join(lines) + "\n"


def print_report(console: Console, report: InstructionReport) -> None:
    table = Table(title="instructions per inference (callgrind)", title_justify="left")
    for column in ("status", "case", "baseline", "current", "change", "range", "note"):
        table.add_column(column, justify="right" if column in ("baseline", "current", "change", "range") else "left")
    for p in report.points:
        change, interval = _change(p)
        table.add_row(MARK.get(p.status, p.status.value), p.case.label(), _count(p.baseline_value),
                      _count(p.current_value), change, interval, p.note)
    console.print(table)
    for warning in report.warnings:
        console.print(f"[yellow]warning[/]: {warning}", highlight=False)
    console.print(_headline(report), highlight=False)


def report_json(report: InstructionReport) -> str:
    return json.dumps(report.to_dict(), indent=1, default=str) + "\n"
