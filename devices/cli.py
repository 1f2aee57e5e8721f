"""``mobexport devices``: what can run benchmarks here, and why the rest cannot."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

from rich.console import Console
from rich.table import Table

from .registry import DeviceOptions, survey


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mobexport devices",
                                description="List the benchmark devices available here and why the others are not.")
    p.add_argument("--adb", type=Path, help="adb executable to use (default: the first 'adb' on PATH)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    rows = survey(DeviceOptions(adb=args.adb))
    console = Console()
    if args.json:
        console.print_json(json.dumps([{"device": r.name, "available": r.available, "detail": r.detail,
                                        "runs": list(r.runs), "info": r.info} for r in rows]))
        return 0
    table = Table(title="benchmark devices", title_justify="left")
    table.add_column("device", style="bold")
    table.add_column("status")
    table.add_column("runs")
    table.add_column("details / why not")
    for r in rows:
        status = "[green]available[/]" if r.available else "[yellow]unavailable[/]"
        table.add_row(r.name, status, ", ".join(r.runs), r.detail)
    console.print(table)
    return 0
