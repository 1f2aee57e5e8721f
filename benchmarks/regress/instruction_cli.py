"""``mobexport regress --metric instructions``: make an instruction baseline, or check results against one.

    mobexport regress --metric instructions --update-baseline --results A.jsonl [B.jsonl ...] --baseline FILE
    mobexport regress --metric instructions --baseline FILE --results FILE   (exit 1 on regression)

The results come from ``mobexport bench --metric instructions``. Exit status
as for latency: 0 no regression, 1 regression or a baselined case failing,
2 bad input (a baseline or results file of the latency metric among them).
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from mobexport.benchmarks.regress.instruction_baseline import instruction_baseline_from_results, points_from_records, \
    read_instruction_baseline, tool_versions_of
from mobexport.benchmarks.regress.instruction_verdict import DEFAULT_THRESHOLD, compare_instructions, markdown, print_report, report_json
from mobexport.benchmarks.results.records import read_records


def update_baseline(results: list[Path], baseline_path: Path, console: Console) -> int:
    notes: list[str] = []
    command = ["mobexport", "regress", "--metric", "instructions", "--update-baseline", "--results",
               *map(str, results), "--baseline", str(baseline_path)]
    baseline, replaced = instruction_baseline_from_results(results, baseline_path, command, notes)
    for note in notes:
        console.print(f"[yellow]note[/]: {note}", highlight=False)
    versions = ", ".join(f"{k} {v}" for k, v in sorted(baseline.tool_versions.items()) if v)
    console.print(f"wrote instruction baseline [bold]{baseline_path}[/]: {len(baseline.points)} points from "
                  f"{len(results)} run(s), counted with {versions}", highlight=False)
    if replaced:
        console.print(replaced, highlight=False)
    return 0


def check(results: Path, baseline_path: Path, threshold: float | None, console: Console,
          markdown_path: Path | None = None, json_path: Path | None = None, write=None) -> int:
    """Compare; ``write(path, text, option)`` writes the optional outputs (the latency command's writer)."""
    baseline = read_instruction_baseline(baseline_path)
    notes: list[str] = []
    records = read_records(results, notes)
    current = points_from_records(records, str(results))
    report = compare_instructions(baseline, current, tool_versions_of(records),
                                  DEFAULT_THRESHOLD if threshold is None else threshold)
    for note in notes:
        console.print(f"[yellow]note[/]: {note}", highlight=False)
    print_report(console, report)
    text = markdown(report, Path(baseline_path).name, str(results))
    if markdown_path is not None:
        write(markdown_path, text, "--markdown")
        console.print(f"markdown: {markdown_path}")
    if json_path is not None:
        write(json_path, report_json(report), "--json")
    return report.exit_status
