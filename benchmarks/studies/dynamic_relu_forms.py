"""Which form of Dynamic ReLU runs fastest: ONNX Runtime and ExecuTorch-XNNPACK, side by side.

``max(a1 x, a2 x)`` can be written three ways with standard ops. With
``p = max(a1, a2)`` and ``n = min(a1, a2)`` on the ``[B, C, 1, 1]`` slopes:
for ``x >= 0`` the larger product is ``p x``, for ``x < 0`` it is ``n x``
(multiplying by a negative number flips the order), so::

    max(a1 x, a2 x) = x * where(x >= 0, p, n)          # form "where"
                    = n x + (p - n) relu(x)            # form "relu"
                    = max(a1 x, a2 x)                  # form "maximum": what fold_dynamic_relu writes

The product pipeline writes only "maximum" (``fold_dynamic_relu``); the other
two forms live here, as :class:`MaxFormPass` run after it. This script
measures the three against the untouched graph (no result of it is recorded
yet: ``docs/passes.md``)::

    python -m mobexport.benchmarks.studies.dynamic_relu_forms \\
        --models mobile_former_52m,mobile_former_294m --resolution 224

Cases: each model (``fold_batchnorm`` applied to every variant, so only the
DY-ReLU differs) plus ``dyrelu_op``, one DY-ReLU on the largest map
Mobile-Former-294M feeds one (96 channels at 56x56 for 224 input), which
shows the op's own cost without the rest of the network. Every variant is
checked against ``original`` on the runtime's own outputs before it is timed.
Timing is interleaved: each round runs every variant once, in rotated order,
so load from other processes falls on all variants alike. Writes
``results.json`` and ``dynamic_relu_forms.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from mobexport.devices.interleaved import time_interleaved
from mobexport.export.passes.base import GraphPass, PassResult, call_nodes
from mobexport.export.passes.builder import NodeBuilder
from mobexport.export.passes.dynamic_relu.site import Site, check_site, find_site
from mobexport.export.passes.dynamic_relu.static_prelu import relu_form
from mobexport.export.passes.fold_batchnorm import FoldBatchnormPass
from mobexport.export.passes.fold_dynamic_relu import FoldDynamicReluPass
from mobexport.export.passes.manager import run_passes
from mobexport.export.passes.ops import MAXIMUM, MAXIMUMS, MUL
from mobexport.export.trace import TracedProgram, example_input, trace
from mobexport.models import create_model, get_spec
from mobexport.models.mobile_former import DynamicReLU, DynamicReLUHyper

from mobexport.benchmarks.results.stats import summarize

FORMS = ("where", "relu", "maximum")
VARIANTS = ("original",) + FORMS

aten = torch.ops.aten


class MaxFormPass(GraphPass):
    """Rewrites every DY-ReLU ``max(a1 x, a2 x)`` into ``form``; the max/min run on the small slopes."""

    id = "study_dynamic_relu_max_form"
    after = ("fold_dynamic_relu",)

    def __init__(self, form: str):
        if form not in FORMS:
            raise ValueError(f"unknown DY-ReLU form {form!r}; choose from {', '.join(FORMS)}")
        self.form = form

    def candidates(self, gm):
        return [] if self.form == "maximum" else call_nodes(gm, MAXIMUMS)

    def match(self, gm, node) -> Site | None:
        site = find_site(node)
        if site is not None:
            check_site(site)
        return site

    def rewrite(self, gm, site: Site, result: PassResult) -> None:
        emit, x = NodeBuilder(gm, site.node), site.x
        p, n = emit(MAXIMUM, *site.slopes), emit(aten.minimum.default, *site.slopes)
        if self.form == "where":
            y = emit(MUL, x, emit(aten.where.self, emit(aten.ge.Scalar, x, 0), p, n), like=site.node)
        else:
            y = relu_form(emit, x, n, emit(aten.sub.Tensor, p, n))
        site.node.replace_all_uses_with(y)
RUNTIMES = ("onnxruntime", "xnnpack")


class DynamicReluOp(torch.nn.Module):
    """One DY-ReLU on ``x``, its hyper-function fed from ``x`` itself (so nothing is constant).

    The result is pooled to ``[1, C, 1, 1]``: ExecuTorch's Python runtime
    allocates each output afresh, which on this host costs more than the op
    for a 1 MB map (measured: ``x * 2`` on 96x56x56, 26 ms returned whole,
    0.35 ms pooled); a network's output is small, so the pooled op is the fair
    stand-in.
    """

    def __init__(self, channels: int, token_dim: int = 192):
        super().__init__()
        self.token = torch.nn.Linear(channels, token_dim)
        self.hyper = DynamicReLUHyper(token_dim, channels)
        self.act = DynamicReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)  # a pooling XNNPACK takes
        y = self.act(x, self.hyper(self.token(pooled)))
        return torch.nn.functional.adaptive_avg_pool2d(y, 1)


def traced_case(case: str, resolution: int) -> tuple[TracedProgram, torch.Tensor]:
    if case == "dyrelu_op":
        side = resolution // 4
        x = torch.randn(1, 96, side, side, generator=torch.Generator().manual_seed(0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.export(DynamicReluOp(96).eval(), (x,), strict=False)
        return TracedProgram(program, side, False, side, side, 1), x
    spec = get_spec(case)
    model = create_model(case, resolution=resolution).eval()
    return trace(model, spec, resolution, dynamic=False), example_input(resolution)


def rewritten(base: TracedProgram, x: torch.Tensor, variant: str) -> tuple[TracedProgram, list]:
    """``base`` with ``fold_batchnorm`` and, unless ``original``, ``fold_dynamic_relu`` and the max in ``variant`` form."""
    passes = [FoldBatchnormPass()] + ([] if variant == "original" else [FoldDynamicReluPass(), MaxFormPass(variant)])
    gm = copy.deepcopy(base.program.module())
    results = run_passes(gm, passes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(gm, (x,), strict=False)
    return dataclasses.replace(base, program=program), results


def lower(traced: TracedProgram, runtime: str, path: Path) -> dict:
    """Write ``traced`` for ``runtime`` at ``path``; return what the lowering reports."""
    if runtime == "onnxruntime":
        from mobexport.export.targets.onnx.target import write_onnx

        write_onnx(traced, path)
        return {}
    from mobexport.export.targets.executorch.target import lower_program

    manager, coverage, _ = lower_program(traced.program, "xnnpack")
    with open(path, "wb") as f:
        manager.write_to_file(f)
    d = coverage.to_dict()
    return {k: d[k] for k in ("ops_delegated", "ops_portable", "portable_ops", "delegate_subgraphs")}


def runner_for(runtime: str, path: Path, threads: int):
    if runtime == "onnxruntime":
        from mobexport.devices.runtimes.onnxruntime import OnnxRuntimeRunner

        return OnnxRuntimeRunner(path, threads=threads)
    from mobexport.devices.runtimes.executorch import ExecuTorchRunner

    class AnyInputRunner(ExecuTorchRunner):
        """The product runner takes images only; the single-op case feeds a feature map."""

        def infer(self, x: np.ndarray) -> np.ndarray:
            if self.method is None:
                self.activate()
            return self.method.execute([torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))])[0].numpy().copy()

    return AnyInputRunner(path, threads=threads, backend="xnnpack")


def build(cases: list[str], resolution: int, out: Path, progress: Progress) -> dict:
    """Lower every (case, variant, runtime) once; artifacts already on disk are reused."""
    built: dict = {}
    task = progress.add_task("lowering", total=len(cases) * len(VARIANTS))
    for case in cases:
        base, x = None, None
        for variant in VARIANTS:
            progress.update(task, description=f"{case} / {variant}")
            paths = {r: out / case / f"{variant}.{'onnx' if r == 'onnxruntime' else 'pte'}" for r in RUNTIMES}
            info_path = out / case / f"{variant}.json"
            if not all(p.exists() for p in paths.values()) or not info_path.exists():
                if base is None:
                    base, x = traced_case(case, resolution)
                traced, results = rewritten(base, x, variant)
                info = {"passes": [r.to_dict() for r in results]}
                (out / case).mkdir(parents=True, exist_ok=True)
                for runtime, path in paths.items():
                    info[runtime] = lower(traced, runtime, path)
                info_path.write_text(json.dumps(info, indent=1))
            built[(case, variant)] = (paths, json.loads(info_path.read_text()))
            progress.advance(task)
    return built


def measure(built: dict, cases: list[str], resolution: int, rounds: int, iters: int, threads: int,
            tolerance: float, progress: Progress) -> list[dict]:
    rows = []
    task = progress.add_task("timing", total=len(RUNTIMES) * len(cases) * rounds * len(VARIANTS))
    for runtime in RUNTIMES:
        for case in cases:
            side = resolution // 4 if case == "dyrelu_op" else resolution
            channels = 96 if case == "dyrelu_op" else 3
            x = np.random.default_rng(0).standard_normal((1, channels, side, side)).astype(np.float32)
            runners = {v: runner_for(runtime, built[(case, v)][0][runtime], threads) for v in VARIANTS}
            for r in runners.values():
                r.activate()
            reference = runners["original"].infer(x)
            scale = max(float(np.abs(reference).max()), 1e-6)
            errors = {v: float(np.abs(r.infer(x) - reference).max()) / scale for v, r in runners.items()}
            def turn(v: str) -> list[float]:
                progress.update(task, description=f"{runtime} {case} {v}")
                return [s * 1e3 for s in runners[v].time(x, warmup=2, iters=iters)]

            samples = time_interleaved({v: (lambda v=v: turn(v)) for v in VARIANTS}, rounds, order="rotate",
                                       on_turn=lambda _: progress.advance(task)).samples
            for r in runners.values():
                r.deactivate()
            base = summarize(samples["original"]).median
            for v in VARIANTS:
                stats = summarize(samples[v])
                rows.append({
                    "runtime": runtime, "case": case, "variant": v, "resolution": resolution,
                    "median_ms": stats.median, "ci95_ms": [stats.ci95_low, stats.ci95_high],
                    "ratio_to_original": stats.median / base, "relative_error": errors[v],
                    "outputs_match": errors[v] <= tolerance, "lowering": built[(case, v)][1].get(runtime, {}),
                })
    return rows


def print_table(console: Console, rows: list[dict]) -> None:
    table = Table(title="DY-ReLU forms, side by side (median of interleaved rounds)")
    for column in ("runtime", "case", "form", "median ms", "95% CI", "vs original", "outputs", "portable ops"):
        table.add_column(column, justify="right" if column in ("median ms", "vs original") else "left")
    for row in rows:
        low, high = row["ci95_ms"]
        portable = row["lowering"].get("portable_ops")
        table.add_row(
            row["runtime"], row["case"], row["variant"], f"{row['median_ms']:.3f}", f"{low:.3f}-{high:.3f}",
            f"{row['ratio_to_original']:.3f}x",
            "[green]match[/]" if row["outputs_match"] else f"[red]differ {row['relative_error']:.1e}[/]",
            "" if portable is None else (" ".join(f"{k.split('.')[-2]}x{n}" for k, n in portable.items()) or "none"),
        )
    console.print(table)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({(r["runtime"], r["case"]) for r in rows})
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(groups)), 4))
    width = 0.8 / len(VARIANTS)
    for i, variant in enumerate(VARIANTS):
        ratios = [next(r["ratio_to_original"] for r in rows if (r["runtime"], r["case"]) == g and r["variant"] == variant)
                  for g in groups]
        ax.bar(np.arange(len(groups)) + i * width, ratios, width, label=variant)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(np.arange(len(groups)) + width * (len(VARIANTS) - 1) / 2)
    ax.set_xticklabels([f"{rt}\n{case}" for rt, case in groups], fontsize=8)
    ax.set_ylabel("median latency / original")
    ax.set_title("fold_dynamic_relu forms (lower is faster)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="mobile_former_52m,mobile_former_294m")
    p.add_argument("--resolution", type=int, default=224)
    p.add_argument("--rounds", type=int, default=6, help="interleaved rounds (default: 6)")
    p.add_argument("--iters", type=int, default=10, help="timed runs per variant per round (default: 10)")
    p.add_argument("--threads", type=int, default=1, help="runtime threads (default: 1, the steadiest on a shared CPU)")
    p.add_argument("--tolerance", type=float, default=1e-4, help="max error relative to output scale")
    p.add_argument("--no-op-case", action="store_true", help="skip the single-op case")
    p.add_argument("--out", type=Path, default=Path("mobexport-out/bench/dynamic_relu_forms"))
    args = p.parse_args(argv)
    cases = ([] if args.no_op_case else ["dyrelu_op"]) + [m for m in args.models.split(",") if m]
    args.out.mkdir(parents=True, exist_ok=True)
    console = Console(width=150)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        built = build(cases, args.resolution, args.out, progress)
        rows = measure(built, cases, args.resolution, args.rounds, args.iters, args.threads, args.tolerance, progress)
    print_table(console, rows)
    (args.out / "results.json").write_text(json.dumps(rows, indent=1))
    plot(rows, args.out / "dynamic_relu_forms.png")
    console.print(f"wrote {args.out / 'results.json'} and {args.out / 'dynamic_relu_forms.png'}")
    return 0 if all(r["outputs_match"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
