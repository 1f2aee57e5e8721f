"""What the default graph passes buy: latency with ``--passes default`` vs ``--passes none``, side by side.

    python -m mobexport.benchmarks.passes_benchmark [--models ...] [--targets onnx,executorch]
        [--resolutions 224,512] [--out DIR] [--rounds 40] [--threads 1] [--rebuild]
    python -m mobexport.benchmarks.passes_benchmark --kernels     # token_softmax lowering candidates

Every (model, passes, target, resolution) artifact is built with the normal
export pipeline (parity-checked; reused from ``--out`` when already there),
then all artifacts of one (target, resolution) are loaded at once, each in its
own worker process, and timed *interleaved*: round after round, each worker
runs a few inferences in turn while the others wait on a pipe. Load from other
jobs on the machine then hits every case alike, and the ratios (MF/MobileNet,
default/none) stay meaningful when the absolute numbers do not. ONNX Runtime
workers do not spin between runs (two sessions in one process slow each other
3x on 2 cores); intra-op threads are ``--threads`` (default 1: on a shared
2-core host a second thread mostly waits for a core).

Printed: median latency per case, ratio to MobileNetV3-Large under the same
passes, default/none speedup, MACs before/after, XNNPACK delegate subgraphs,
and the machine's load average while measuring. Results go to
``DIR/passes_benchmark.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MODELS = ("mobile_former_294m", "mobile_former_52m", "cmt_ti", "mobilenet_v3_large_100")
BASELINE = "mobilenet_v3_large_100"
GOAL_MODEL, GOAL_RESOLUTION, GOAL_RATIO = "mobile_former_294m", 224, 2.0


@dataclass
class Case:
    model: str
    passes: str
    target: str  # "onnx" | "executorch"
    resolution: int
    artifact: Path | None = None
    manifest: dict = field(default_factory=dict)
    samples_ms: list[float] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.model}/{self.passes}/{self.target}/{self.resolution}"

    @property
    def median(self) -> float:
        return statistics.median(self.samples_ms) if self.samples_ms else float("nan")


# --------------------------------------------------------------------------- building


def artifact_root(out: Path, case: Case) -> Path:
    # ONNX artifacts are dynamic (one file serves every resolution); ExecuTorch ones are static.
    res = "dynamic" if case.target == "onnx" else str(case.resolution)
    return out / "artifacts" / f"{case.passes}-{res}"


def build(case: Case, out: Path, rebuild: bool, export_resolution: int) -> None:
    """Export ``case`` with the pipeline (or reuse a complete earlier export); fills artifact + manifest."""
    from mobexport.config import ExportConfig
    from mobexport.export.pipeline import export_model

    config = ExportConfig(model=case.model, target=case.target, resolution=export_resolution,
                          out_dir=artifact_root(out, case), passes=case.passes, parity_samples=2,
                          dynamic=case.target == "onnx", target_options={"backend": "xnnpack"}
                          if case.target == "executorch" else {})
    manifest_path = config.artifact_dir() / "manifest.json"
    if rebuild or not manifest_path.exists():
        export_model(config)
    case.manifest = json.loads(manifest_path.read_text())
    case.artifact = config.artifact_dir() / case.manifest["artifact"]["file"]


# --------------------------------------------------------------------------- timing

WORKER = r"""
import json, sys, time
import numpy as np
spec = json.loads(sys.argv[1])
from mobexport.export.targets import get_target
runner = get_target(spec["target"]).load(spec["artifact"], spec["manifest"], device="cpu")
runner.threads = spec["threads"]
runner.activate()
x = np.random.default_rng(0).standard_normal((1, 3, spec["resolution"], spec["resolution"])).astype(np.float32)
for _ in range(3):
    runner.infer(x)
print("ready", flush=True)
for line in sys.stdin:
    samples = []
    for _ in range(int(line)):
        start = time.perf_counter()
        runner.infer(x)
        samples.append((time.perf_counter() - start) * 1e3)
    print(" ".join(f"{s:.4f}" for s in samples), flush=True)
"""


def time_interleaved(cases: list[Case], rounds: int, per_round: int, threads: int, progress=None, task=None) -> dict:
    """Time ``cases`` round-robin, one worker process each; returns the load average seen."""
    workers = {}
    try:
        for case in cases:
            spec = {"target": case.target, "artifact": str(case.artifact), "manifest": case.manifest,
                    "resolution": case.resolution, "threads": threads}
            workers[case.key] = subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(spec)], text=True,
                                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        for case in cases:
            line = workers[case.key].stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"worker for {case.key} failed to load its artifact")
        loads = [os.getloadavg()[0]]
        for r in range(rounds):
            order = cases[r % len(cases):] + cases[:r % len(cases)]
            for case in order:
                proc = workers[case.key]
                proc.stdin.write(f"{per_round}\n")
                proc.stdin.flush()
                case.samples_ms.extend(float(s) for s in proc.stdout.readline().split())
            loads.append(os.getloadavg()[0])
            if progress is not None:
                progress.advance(task)
        return {"min": min(loads), "max": max(loads), "mean": sum(loads) / len(loads)}
    finally:
        for proc in workers.values():
            if proc.stdin:
                proc.stdin.close()
            proc.wait(timeout=60)


# --------------------------------------------------------------------------- reporting


def macs_at(case: Case, cases: list[Case]) -> float:
    """Total MACs (millions) of ``case``'s rewritten program at its resolution.

    A manifest counts MACs at its export resolution; a dynamic ONNX artifact
    timed at another size borrows the count of a static export at that size,
    or the program is traced and rewritten again to count them.
    """
    for other in [case, *cases]:
        if (other.model, other.passes) == (case.model, case.passes) and other.manifest \
                and other.manifest.get("resolution", {}).get("export") == case.resolution:
            return other.manifest["macs"]["total_macs"] / 1e6
    from mobexport.export.macs import count_macs
    from mobexport.export.passes import resolve, rewrite
    from mobexport.export.trace import trace
    from mobexport.models import create_model, get_spec

    model = create_model(case.model, resolution=case.resolution).eval()
    traced, _ = rewrite(trace(model, get_spec(case.model), case.resolution), resolve(case.passes))
    return count_macs(traced.program, case.resolution).total_macs / 1e6


def summarize(cases: list[Case], loads: dict, threads: int) -> dict:
    by_key = {c.key: c for c in cases}
    rows = []
    for c in cases:
        base = by_key.get(f"{BASELINE}/{c.passes}/{c.target}/{c.resolution}")
        none = by_key.get(f"{c.model}/none/{c.target}/{c.resolution}")
        rows.append({
            "model": c.model, "passes": c.passes, "target": c.target, "resolution": c.resolution,
            "median_ms": round(c.median, 3), "samples": len(c.samples_ms),
            "vs_mobilenet": round(c.median / base.median, 3) if base else None,
            "speedup_vs_none": round(none.median / c.median, 3) if none else None,
            "macs_m": round(macs_at(c, cases), 2),
            "delegate_subgraphs": c.manifest.get("target_details", {}).get("delegate_subgraphs"),
            "ops_portable": c.manifest.get("target_details", {}).get("ops_portable"),
            "passes_applied": {p["id"]: p["rewrites"] for p in c.manifest.get("passes", [])},
        })
    goal = {}
    for target in sorted({c.target for c in cases}):
        row = next((r for r in rows if r["model"] == GOAL_MODEL and r["passes"] == "default"
                    and r["target"] == target and r["resolution"] == GOAL_RESOLUTION), None)
        if row and row["vs_mobilenet"] is not None:
            goal[target] = {"ratio": row["vs_mobilenet"], "goal": GOAL_RATIO, "met": row["vs_mobilenet"] <= GOAL_RATIO}
    return {"rows": rows, "load_average": loads, "threads": threads, "goal": goal,
            "host": {"cpus": os.cpu_count(), "platform": sys.platform}}


def print_table(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for target in sorted({r["target"] for r in summary["rows"]}):
        table = Table(title=f"{target}: passes=default vs none (medians, {summary['threads']} thread(s), "
                            f"interleaved; load {summary['load_average'].get(target, {})})")
        for col in ("model", "res", "passes", "median ms", "x MobileNetV3-L", "default speedup", "MMACs",
                    "XNNPACK subgraphs" if target == "executorch" else "ONNX nodes"):
            table.add_column(col, justify="left" if col in ("model", "passes") else "right")
        for r in (r for r in summary["rows"] if r["target"] == target):
            extra = r["delegate_subgraphs"] if target == "executorch" else r.get("onnx_nodes")
            table.add_row(r["model"], str(r["resolution"]), r["passes"], f"{r['median_ms']:.2f}",
                          f"{r['vs_mobilenet']:.2f}" if r["vs_mobilenet"] else "-",
                          f"{r['speedup_vs_none']:.2f}" if r["speedup_vs_none"] else "-",
                          f"{r['macs_m']:.1f}", "-" if extra is None else str(extra))
        console.print(table)
    for target, g in summary["goal"].items():
        verdict = "[green]met[/green]" if g["met"] else "[red]not met[/red]"
        console.print(f"goal {GOAL_MODEL}/{BASELINE} at {GOAL_RESOLUTION} on {target}: "
                      f"{g['ratio']:.2f} (<= {g['goal']}) {verdict}")


# --------------------------------------------------------------------------- main


def run(args) -> dict:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    resolutions = [int(r) for r in args.resolutions.split(",")]
    cases = [Case(m, p, t, r) for t in targets for r in resolutions for m in args.models.split(",")
             for p in ("none", "default")]
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns) as progress:
        task = progress.add_task("build", total=len(cases))
        for case in cases:
            progress.update(task, description=f"build {case.key}")
            build(case, out, args.rebuild, resolutions[0] if case.target == "onnx" else case.resolution)
            progress.advance(task)
        loads = {}
        groups = [(t, r) for t in targets for r in resolutions]
        task = progress.add_task("time", total=len(groups) * args.rounds)
        for target, res in groups:
            group = [c for c in cases if c.target == target and c.resolution == res]
            progress.update(task, description=f"time {target} @{res}")
            loads.setdefault(target, {})[res] = time_interleaved(group, args.rounds, args.per_round, args.threads,
                                                                  progress, task)
    summary = summarize(cases, {t: {r: round(v["mean"], 1) for r, v in d.items()} for t, d in loads.items()},
                        args.threads)
    for case, row in zip(cases, summary["rows"]):
        if case.target == "onnx":
            row["onnx_nodes"] = case.manifest.get("target_details", {}).get("nodes")
    summary["load_average_detail"] = loads
    (out / "passes_benchmark.json").write_text(json.dumps(summary, indent=2))
    print_table(summary)
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--targets", default="onnx,executorch")
    parser.add_argument("--resolutions", default="224,512")
    parser.add_argument("--out", default="mobexport-out/passes-benchmark")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--per-round", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rebuild", action="store_true", help="export again even where an artifact exists")
    parser.add_argument("--kernels", action="store_true", help="time token_softmax's lowering candidates instead")
    args = parser.parse_args(argv)
    if args.kernels:
        from .kernel_lowerings_benchmark import run as run_kernels

        run_kernels(Path(args.out), args.rounds, args.threads)
        return 0
    started = time.time()
    run(args)
    print(f"done in {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
