"""What ``mobexport regress`` prints and writes: markdown (CI job summaries) and rich tables.

The markdown is GitHub-flavoured so the same text serves as a pull-request
comment, a ``$GITHUB_STEP_SUMMARY`` and a file for humans. Numbers that
decide nothing are rounded for reading; MACs and parameter counts are printed
exactly, since any change in them is a real change of the model.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from mobexport.benchmarks.results.curves import CurveId
from .history import History
from .verdict import PointComparison, RegressionReport, Status

STATUS_MARK = {
    Status.REGRESSED: "❌ regressed",
    Status.FAILED: "❌ failed",
    Status.IMPROVED: "🚀 improved",
    Status.UNCHANGED: "✅ unchanged",
    Status.INCONCLUSIVE: "⚠️ inconclusive",
    Status.MISSING: "➖ missing",
    Status.NEW: "🆕 new",
    Status.REFERENCE: "📏 reference",
}
STATUS_STYLE = {
    Status.REGRESSED: "bold red", Status.FAILED: "bold red", Status.IMPROVED: "green", Status.UNCHANGED: "green",
    Status.INCONCLUSIVE: "yellow", Status.MISSING: "dim", Status.NEW: "cyan", Status.REFERENCE: "blue",
}
HISTORY_COLUMNS = 12  # most recent runs shown in the history table


def _pct(fraction: float | None) -> str:
    return "" if fraction is None else f"{fraction:+.1%}"


def _count_change(before: int | None, after: int | None) -> str:
    if before is None and after is None:
        return ""
    if before is None or after is None or before == after:
        return f"{after if after is not None else before:,}"
    return f"{before:,} → {after:,} ({after / before - 1:+.2%})" if before else f"{before:,} → {after:,}"


def _value(report: RegressionReport, p: PointComparison, side: str) -> str:
    value, ms = getattr(p, f"{side}_value"), getattr(p, f"{side}_ms")
    if ms is None:
        return ""
    if value is None or not report.settings.relative or p.status is Status.REFERENCE:
        return f"{ms:.3f} ms"
    return f"{value:.3f}× ({ms:.2f} ms)"


def _interval(p: PointComparison) -> str:
    """The interval of the change, in the unit of the change column (percent) on every row."""
    if p.ci_low is None or p.ci_high is None:
        return ""
    return f"{_pct(p.ci_low - 1)}…{_pct(p.ci_high - 1)}"


def _cost_changes(p: PointComparison) -> str:
    changes = []
    if p.macs_changed:
        changes.append(f"MACs {_count_change(p.baseline_macs, p.current_macs)}")
    if p.params_changed:
        changes.append(f"params {_count_change(p.baseline_params, p.current_params)}")
    return ", ".join(changes)


def _headline(report: RegressionReport) -> str:
    failing = report.regressions
    if failing:
        return f"❌ {len(failing)} regression{'s' if len(failing) != 1 else ''}"
    return "✅ no regression"


def _method(report: RegressionReport) -> str:
    s = report.settings
    what = (f"relative to `{s.reference}` measured in the same run, setting and resolution"
            if s.relative else "absolute latency")
    runs = max((p.baseline_runs for p in report.points), default=1)
    level = f"{report.point_confidence:.2%}".rstrip("0").rstrip(".")
    interval = f"{level} bootstrap interval of the ratio of medians ({s.resamples} resamples, seed {s.seed})"
    if runs > 1:
        interval = (f"{level} prediction interval from the run-to-run variation of the baseline's "
                    f"{runs} runs (never narrower than the bootstrap interval)")
    return (f"Mode: {what} · minimum effect {s.min_effect:.0%} · {interval}, the level that keeps a false "
            f"alarm anywhere in an unchanged run below {1 - s.confidence:.0%}; a point regresses when the change "
            f"reaches the minimum effect and the interval lies above no change.")


def _describe(provenance: dict) -> str:
    parts = []
    devices = provenance.get("devices") or []
    if devices:
        parts.append("; ".join(_device(d) for d in devices))
    git = provenance.get("git") or {}
    if git.get("revision"):
        parts.append(f"git {git['revision'][:10]}{' (dirty)' if git.get('dirty') else ''}")
    if provenance.get("measured_from"):
        parts.append(f"measured {provenance['measured_from']}")
    return ", ".join(parts) or "no provenance recorded"


def _device(info: dict) -> str:
    preferred = [info[k] for k in ("name", "cpu", "processor", "soc", "model", "cores", "os") if info.get(k)]
    values = preferred or [v for v in info.values() if isinstance(v, (str, int, float))]
    return " / ".join(str(v) for v in values[:4]) or "unknown device"


def comparison_markdown(report: RegressionReport, baseline_name: str, results_name: str,
                        plot_name: str | None = None) -> str:
    lines = [f"## mobexport regression check: {_headline(report)}", "", _method(report), ""]
    factor = report.machine_factor()
    if factor is not None:
        lines += [f"Machine speed: the reference ran {factor:.2f}× the baseline's latency "
                  f"({'slower' if factor > 1 else 'faster'}); relative mode cancels that out.", ""]
    detectable = report.detectable_change()
    if detectable is not None:
        lines += [f"Run-to-run variation of the baseline's {report.baseline_runs} runs: only a change beyond "
                  f"{detectable:.2f}× can be told from noise on the machine that recorded it"
                  + (" (too noisy to catch the minimum effect: make the baseline on a quieter machine)."
                     if detectable > 1 + report.settings.min_effect else "."), ""]
    lines += [f"- Baseline `{baseline_name}`: {_describe(report.baseline_provenance)}",
              f"- Results `{results_name}`: {_describe(report.current_provenance)}", ""]
    lines += [f"> ⚠️ {warning}\n" for warning in report.warnings]
    unit = "× reference" if report.settings.relative else "ms"
    lines += [f"| status | model | setting | resolution | baseline ({unit}) | current ({unit}) | change | "
              "change interval | MACs | params |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for p in report.points:
        macs = _count_change(p.baseline_macs, p.current_macs)
        params = _count_change(p.baseline_params, p.current_params)
        lines.append(" | ".join([
            f"| {STATUS_MARK[p.status]}", f"`{p.case.model}`", CurveId.of(p.case).setting(), str(p.case.resolution),
            _value(report, p, "baseline"), _value(report, p, "current"),
            _pct(p.change), _interval(p), f"**{macs}**" if p.macs_changed else macs,
            f"**{params}**" if p.params_changed else params,
        ]) + " |")
    notes = [p for p in report.points if p.note]
    if notes:
        lines += ["", "Notes:"] + [f"- `{p.case.label()}`: {p.note}" for p in notes]
    if report.cost_changes:
        lines += ["", "MACs / params changed (exact):"]
        lines += [f"- `{p.case.label()}`: {_cost_changes(p)}" for p in report.cost_changes]
    if plot_name:
        lines += ["", f"Plot: `{plot_name}`"]
    return "\n".join(lines) + "\n"


def print_comparison(console: Console, report: RegressionReport) -> None:
    unit = "× ref" if report.settings.relative else "ms"
    table = Table(title=f"regression check ({report.settings.mode}, min effect {report.settings.min_effect:.0%})",
                  title_justify="left")
    table.add_column("status")
    table.add_column("case", overflow="fold")
    for name in (f"baseline {unit}", f"current {unit}", "change", "change interval", "MACs"):
        table.add_column(name, justify="right")
    for p in report.points:
        plain = not report.settings.relative or p.status is Status.REFERENCE
        base = p.baseline_ms if plain else p.baseline_value
        cur = p.current_ms if plain else p.current_value
        table.add_row(
            f"[{STATUS_STYLE[p.status]}]{p.status.value}[/]", p.case.label(),
            "" if base is None else f"{base:.3f}{' ms' if plain and report.settings.relative else ''}",
            "" if cur is None else f"{cur:.3f}{' ms' if plain and report.settings.relative else ''}",
            _pct(p.change), _interval(p),
            f"[bold]{_count_change(p.baseline_macs, p.current_macs)}[/]" if p.macs_changed else "same",
        )
    console.print(table)
    for warning in report.warnings:
        console.print(f"[yellow]warning[/]: {warning}")
    detectable = report.detectable_change()
    if detectable is not None:
        style = "yellow" if detectable > 1 + report.settings.min_effect else "green"
        console.print(f"baseline of {report.baseline_runs} runs: changes beyond [{style}]{detectable:.2f}×[/] "
                      "stand out from its run-to-run variation")
    factor = report.machine_factor()
    if factor is not None:
        console.print(f"reference {report.settings.reference}: {factor:.2f}× the baseline's latency on this machine")
    for p in report.cost_changes:
        console.print(f"[bold]cost changed[/] {p.case.label()}: " + _cost_changes(p))
    failing = report.regressions
    if failing:
        console.print(f"[bold red]{len(failing)} regression{'s' if len(failing) != 1 else ''}[/]: "
                      + ", ".join(p.case.label() for p in failing))
    else:
        console.print("[bold green]no regression[/]")


def _history_cell(value: float | None, mode: str) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if mode == "relative" else f"{value:.2f} ms"


def history_markdown(history: History, plot_name: str | None = None) -> str:
    runs = history.runs[-HISTORY_COLUMNS:]
    offset = len(history.runs) - len(runs)
    what = f"latency ÷ `{history.reference}` of the same run" if history.mode == "relative" else "median latency (ms)"
    lines = [f"## mobexport trends: {len(history.runs)} runs", "", f"Values: {what}.", ""]
    if offset:
        lines += [f"Showing the last {len(runs)} of {len(history.runs)} runs.", ""]
    lines += ["Runs:"] + [f"{offset + i + 1}. {run.measured_at} `{run.path}`"
                          + (f" ({', '.join(run.devices)})" if run.devices else "")
                          for i, run in enumerate(runs)] + [""]
    lines.append("| model | setting | resolution | " + " | ".join(f"#{offset + i + 1}" for i in range(len(runs)))
                 + " | first → last |")
    lines.append("|---|---|---:|" + "---:|" * len(runs) + "---:|")
    for case, values in history.series.items():
        cells = [_history_cell(v, history.mode) for v in values[offset:]]
        lines.append(f"| `{case.model}` | {CurveId.of(case).setting()} | {case.resolution} | " + " | ".join(cells)
                     + f" | {_pct(history.change(case))} |")
    if plot_name:
        lines += ["", f"Plot: `{plot_name}`"]
    return "\n".join(lines) + "\n"


def print_history(console: Console, history: History) -> None:
    runs = history.runs[-HISTORY_COLUMNS:]
    offset = len(history.runs) - len(runs)
    table = Table(title=f"trends over {len(history.runs)} runs ({history.mode})", title_justify="left")
    table.add_column("model", no_wrap=True)
    table.add_column("setting")
    table.add_column("res")
    for i, run in enumerate(runs):
        stamp = run.measured_at
        table.add_column(f"#{offset + i + 1}\n{stamp[5:10]}\n{stamp[11:16]}", justify="right")
    table.add_column("first → last", justify="right")
    for case, values in history.series.items():
        change = history.change(case)
        style = "red" if change is not None and change > 0.1 else "green" if change is not None and change < -0.1 else ""
        table.add_row(case.model, CurveId.of(case).setting(), str(case.resolution),
                      *[_history_cell(v, history.mode) for v in values[offset:]],
                      f"[{style}]{_pct(change)}[/]" if style else _pct(change))
    console.print(table)
