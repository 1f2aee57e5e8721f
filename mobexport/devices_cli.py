"""``mobexport devices``: what can run benchmarks here, and why the rest cannot."""

from __future__ import annotations

import argparse
import json
from typing import Sequence

from rich.table import Table

from mobexport.consoles import stdout_console
from mobexport.options import ArgumentParser, add_verbosity_options, existing_file

from mobexport.devices.registry import DeviceOptions, survey


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="mobexport devices",
                       description="List the benchmark devices available here and why the others are not.",
                       epilog="example: mobexport devices --json")
    p.add_argument("--adb", type=existing_file, help="adb executable to use (default: the first 'adb' on PATH)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--ray-resources", action="store_true",
                   help="print the 'ray start --resources' line that advertises this host's devices to a Ray cluster")
    p.add_argument("--cluster", metavar="ADDRESS", help="list the devices of every node of this Ray cluster")
    add_verbosity_options(p)
    return p


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    if args.ray_resources or args.cluster:  # Ray is imported only for these
        from mobexport.benchmarks.cluster import cli as cluster_cli

        if args.cluster:
            return cluster_cli.print_cluster_devices(args.cluster, args.json)
        return cluster_cli.print_ray_resources(args.adb, args.json)
    rows = survey(DeviceOptions(adb=args.adb))
    console = stdout_console()
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
