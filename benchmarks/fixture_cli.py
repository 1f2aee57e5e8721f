"""``mobexport train-fixture``: train (or find cached) the quantization test models.

    mobexport train-fixture                       both fixture models at 96 px
    mobexport train-fixture --model mobilenet_v3_small_100 --epochs 4 --force

Each model is trained on Synthetic Shapes (see ``docs/fixtures.md``) and its
checkpoint cached under ``--out`` (default ``$MOBEXPORT_CACHE/fixtures`` or
``~/.cache/mobexport/fixtures``), keyed by model, resolution, seed, dataset
version and recipe; a second run finds it and does not retrain. Exit status 2
on bad input (unknown model, a resolution the model cannot take, epochs < 1).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from rich.console import Console
from rich.table import Table

from mobexport.options import ArgumentParser, add_verbosity_options, nonneg_int, positive_int, writable_dir

from .fixture_training import (
    DEFAULT_RESOLUTION,
    DEFAULT_THREADS,
    FIXTURE_MODELS,
    FixtureError,
    RichReporter,
    cache_dir,
    check_request,
    default_recipe,
    obtain_fixture,
)


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="mobexport train-fixture",
        description="Train small zoo models on the Synthetic Shapes dataset, for measuring quantization "
                    "accuracy; cached, so a repeated run returns at once.",
        epilog="example: mobexport train-fixture --model mobilenet_v3_small_100 --epochs 4\nSee docs/fixtures.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", action="append", metavar="NAME",
                   help=f"model to train; repeat or comma-separate (default: {', '.join(FIXTURE_MODELS)})")
    p.add_argument("--resolution", type=positive_int, default=DEFAULT_RESOLUTION,
                   help=f"training and evaluation size in pixels (default: {DEFAULT_RESOLUTION})")
    p.add_argument("--epochs", type=positive_int, help="training epochs (default: the recipe's; changes the cache key)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="dataset and initialisation seed (default: 0)")
    p.add_argument("--out", type=writable_dir, help=f"checkpoint directory (default: {cache_dir()})")
    p.add_argument("--force", action="store_true", help="retrain even if a cached checkpoint exists")
    p.add_argument("--plot", type=Path, metavar="PNG", help="also plot held-out top-1 and loss per epoch into PNG")
    p.add_argument("--threads", type=positive_int,
                   help=f"torch CPU threads (default: {DEFAULT_THREADS}, or 1 when the CPU is already "
                        "oversubscribed; not part of the cache key)")
    add_verbosity_options(p)
    return p


def _model_names(values: list[str] | None) -> list[str]:
    if not values:
        return list(FIXTURE_MODELS)
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    return list(dict.fromkeys(names))  # keep order, drop repeats


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    names = _model_names(args.model)
    if args.threads is not None and args.threads < 1:
        raise FixtureError(f"--threads must be at least 1, not {args.threads}", "e.g. --threads 2")
    # Check every request before training anything: a typo in the second model
    # should not surface after minutes spent on the first.
    recipes = {}
    for name in names:
        check_request(name, args.resolution, args.seed)
        recipes[name] = default_recipe(name, args.epochs).validate()

    console = Console()
    reporter = RichReporter(Console(stderr=True))
    outcomes = []
    for name in names:
        outcome = obtain_fixture(name, args.resolution, args.seed, recipe=recipes[name], out_dir=args.out,
                                 force=args.force, reporter=reporter, threads=args.threads)
        outcomes.append(outcome)
    console.print(_table(outcomes))
    for o in outcomes:
        console.print(f"{o.meta['model']}: {o.path}", highlight=False, soft_wrap=True)
    if args.plot:
        from .fixture_plot import plot_training

        console.print(f"training curves: {plot_training([o.meta for o in outcomes], args.plot)}",
                      highlight=False, soft_wrap=True)
    return 0


def _table(outcomes) -> Table:
    table = Table(title="Synthetic Shapes fixtures")
    for column in ("model", "px", "epochs", "held-out top-1", "wall", "CPU", "threads", ""):
        table.add_column(column, justify="left" if column in ("model", "") else "right")
    for o in outcomes:
        meta = o.meta
        table.add_row(meta["model"], str(meta["resolution"]), str(meta["recipe"]["epochs"]),
                      f"{meta['heldout_top1']:.1%}", f"{meta['train_seconds'] / 60:.1f} min",
                      f"{meta['train_cpu_seconds'] / 60:.1f} min", str(meta["threads"]),
                      "trained now" if o.trained else "cached")
    return table
