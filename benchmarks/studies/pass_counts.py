"""What the graph passes do to each zoo family: rewrites, skipped sites and op counts, one table.

    python -m mobexport.benchmarks.studies.pass_counts                      # smallest variant per family
    python -m mobexport.benchmarks.studies.pass_counts --models cmt_ti,mobile_former_26m --passes fold_batchnorm

Each model is traced static at ``--resolution`` (or its smallest accepted
size, if larger) and rewritten with ``run_passes`` over ``program.module()``,
as the pipeline does; the outputs before and after are compared, so a row is
also a parity check. Writes ``pass_counts.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import collections
import copy
import json
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from mobexport.export.passes import resolve, run_passes
from mobexport.export.trace import example_input, trace
from mobexport.models import create_model, get_spec, smallest_per_family

aten = torch.ops.aten
# Ops whose counts show what the passes removed.
WATCHED = {
    "batch_norm": aten.batch_norm.default,
    "add": aten.add.Tensor,
    "hardsigmoid": aten.hardsigmoid.default,
    "chunk": aten.chunk.default,
    "maximum": aten.maximum.default,
    "conv2d": aten.conv2d.default,
}


def count(gm: torch.fx.GraphModule) -> dict[str, int]:
    ops = collections.Counter(n.target for n in gm.graph.nodes if n.op == "call_function")
    return {name: ops[op] for name, op in WATCHED.items()}


def measure(name: str, resolution: int, passes: str) -> dict:
    spec = get_spec(name)
    resolution = max(resolution, spec.resolutions.min)
    model = create_model(name, resolution=resolution).eval()
    gm = copy.deepcopy(trace(model, spec, resolution).program.module())
    x = example_input(resolution)
    with torch.no_grad():
        before = gm(x)
    ops_before = count(gm)
    results = run_passes(gm, resolve(passes))
    with torch.no_grad():
        error = float((gm(x) - before).abs().max() / before.abs().max().clamp_min(1e-6))
    return {
        "model": name, "family": spec.family, "resolution": resolution, "relative_error": error,
        "ops_before": ops_before, "ops_after": count(gm),
        "passes": [r.to_dict() for r in results],
    }


def print_table(console: Console, rows: list[dict]) -> None:
    pass_ids = [p["id"] for p in rows[0]["passes"]] if rows else []
    table = Table(title="graph passes per zoo family (rewrites / skipped sites; ops before -> after)")
    for column in ["family", "model", *pass_ids, *WATCHED, "rel. error"]:
        table.add_column(column, justify="left" if column in ("family", "model") else "right")
    for row in rows:
        by_id = {p["id"]: p for p in row["passes"]}
        table.add_row(
            row["family"], f"{row['model']} @{row['resolution']}",
            *(f"{by_id[i]['rewrites']} / {len(by_id[i]['skipped'])}" for i in pass_ids),
            *(f"{row['ops_before'][k]} -> {row['ops_after'][k]}" for k in WATCHED),
            f"{row['relative_error']:.1e}",
        )
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", help="comma-separated (default: the smallest variant of each family)")
    p.add_argument("--resolution", type=int, default=96)
    p.add_argument("--passes", default="fold_batchnorm,fuse_dwconv_ffn,split_depthwise_multiplier,fold_dynamic_relu")
    p.add_argument("--out", type=Path, default=Path("mobexport-out/bench/pass_counts"))
    args = p.parse_args(argv)
    models = args.models.split(",") if args.models else smallest_per_family()
    console = Console(width=200)
    rows = []
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("tracing", total=len(models))
        for name in models:
            progress.update(task, description=name)
            rows.append(measure(name, args.resolution, args.passes))
            progress.advance(task)
    print_table(console, rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pass_counts.json").write_text(json.dumps(rows, indent=1))
    console.print(f"wrote {args.out / 'pass_counts.json'}")
    return 0 if all(r["relative_error"] < 1e-5 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
