"""What the compiler buys over a plain export: Mobile-Former vs MobileNetV3-L, exported plainly and by mobexport.

    python -m mobexport.benchmarks.studies.compiler_benchmark [--models mobile_former_294m]
        [--baseline mobilenet_v3_large_100] [--runtimes onnx,executorch] [--resolutions 224,512]
        [--threads 1,2] [--rounds 20] [--per-round 2] [--out DIR] [--rebuild]

Per (runtime, resolution) every model is exported twice, statically at that size:

* **plain**, the way a user does it without us: Mobile-Former written as a
  researcher writes it (:mod:`.plain_mobile_former`), MobileNetV3-L as the zoo
  has it, then ``torch.onnx.export(model, (x,), path, dynamo=True)``, or
  ``torch.export.export`` -> ``to_edge_transform_and_lower(XnnpackPartitioner)``
  -> ``.to_executorch()``. Its output is checked once against the eager model
  (max |err|, cosine); a plain artifact that disagrees is not timed.
* **mobexport**: the zoo model through ``export_model`` with the default passes
  (parity-checked by the pipeline).

Both load the same weights (a random checkpoint in ``OUT/weights``, see
``quant_latency.latency_weights``), so all four artifacts of a pair compute the
same function. Artifacts are reused from ``--out`` unless ``--rebuild``; the
export wall time of each is recorded when it is built.

Timing is ``passes_benchmark``'s: the cases of one (runtime, resolution,
threads) group each run in their own worker process, interleaved round after
round, so load from other jobs hits all of them alike. Ratios are the
**median of per-round ratios** (each round's two turns are minutes apart at
most), which is steadier on a shared machine than a ratio of medians; the
medians in ms are printed beside them. Goal: mobexport's MF/baseline at most
1.5 at 224 and 1.4 at 512. Results: ``OUT/compiler_benchmark.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MODELS = ("mobile_former_294m",)
BASELINE = "mobilenet_v3_large_100"
GOALS = {224: 1.5, 512: 1.4}  # mobexport MF / baseline latency, at most
BUILDS = ("plain", "mobexport")


@dataclass
class Case:
    """One artifact: a model, built plainly or by mobexport, for one runtime at one static size.

    The attribute names (``target``, ``artifact``, ``manifest``, ``key``,
    ``samples_ms``) are those ``passes_benchmark.time_cases`` reads.
    """

    model: str
    build: str  # "plain" | "mobexport"
    target: str  # "onnx" | "executorch"
    resolution: int
    artifact: Path | None = None
    manifest: dict = field(default_factory=dict)
    export_s: float | None = None
    check: dict = field(default_factory=dict)  # output vs eager: max_abs_error, cosine, passed
    refused: str | None = None  # why it is not timed
    samples_ms: list[float] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.build}/{self.model}/{self.target}/{self.resolution}"

    @property
    def median(self) -> float:
        return statistics.median(self.samples_ms) if self.samples_ms else float("nan")


# --------------------------------------------------------------------------- building: the pipeline


def build_with_pipeline(case: Case, root: Path, rebuild: bool, *, passes: str = "default",
                        checkpoint: Path | None = None, model_kwargs: dict | None = None) -> None:
    """Export ``case`` with ``export_model`` (static, at its resolution) into ``root``, or reuse an earlier export.

    Fills ``artifact``, ``manifest``, ``export_s`` (wall time, kept in a
    sidecar so a reused artifact still reports it) and ``check`` (the
    pipeline's own parity).
    """
    from mobexport.config import ExportConfig
    from mobexport.export.pipeline import export_model

    config = ExportConfig(model=case.model, target=case.target, resolution=case.resolution, out_dir=root,
                          passes=passes, parity_samples=2, dynamic=False, checkpoint=checkpoint,
                          model_kwargs=model_kwargs,
                          target_options={"backend": "xnnpack"} if case.target == "executorch" else {})
    manifest_path = config.artifact_dir() / "manifest.json"
    sidecar = root / f"{case.model.rsplit(':', 1)[-1]}.{case.target}.build.json"
    if rebuild or not manifest_path.exists():
        started = time.perf_counter()
        export_model(config)
        sidecar.write_text(json.dumps({"export_s": round(time.perf_counter() - started, 2)}))
    case.manifest = json.loads(manifest_path.read_text())
    case.artifact = config.artifact_dir() / case.manifest["artifact"]["file"]
    case.export_s = json.loads(sidecar.read_text())["export_s"] if sidecar.exists() else None
    parity = (case.manifest.get("parity") or [{}])[0]
    case.check = {k: parity.get(k) for k in ("max_abs_error", "cosine", "passed")} | {"by": "export_model"}


# --------------------------------------------------------------------------- building: plainly


def plain_model(name: str, weights: Path):
    """The model a user would have: Mobile-Former written plainly, any other as the zoo builds it; weights loaded."""
    import torch

    from mobexport.models import create_model

    from .plain_mobile_former import plain_mobile_former

    model = plain_mobile_former(name) if name.startswith("mobile_former_") else create_model(name)
    model.load_state_dict(torch.load(weights, weights_only=True), strict=True)
    return model.eval()


def export_plainly(model, target: str, resolution: int, path: Path) -> None:
    """What the runtimes' own tutorials do, nothing more."""
    import torch

    x = torch.randn(1, 3, resolution, resolution)
    if target == "onnx":
        torch.onnx.export(model, (x,), str(path), dynamo=True, verbose=False)
    elif target == "executorch":
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

        program = torch.export.export(model, (x,))
        lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
        path.write_bytes(lowered.to_executorch().buffer)
    else:
        raise ValueError(f"no plain export for target {target!r}")


def plain_manifest(case: Case, path: Path) -> dict:
    """The little a runner needs to open a plain artifact: its kind, its one accepted size, its delegate."""
    manifest = {"artifact": {"file": path.name, "kind": case.target},
                "resolution": {"export": case.resolution, "dynamic": False,
                               "input_shape": [1, 3, case.resolution, case.resolution]}}
    if case.target == "executorch":
        manifest["target_details"] = {"backend": "xnnpack"}
    return manifest


def check_against_eager(model, case: Case) -> dict:
    """Max |err| and cosine of the artifact against eager PyTorch on two random images (fp32 bounds)."""
    import torch

    from mobexport.devices.runtimes import open_runner
    from mobexport.export import parity

    def eager(x):
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    runner = open_runner(case.artifact, case.manifest)
    if hasattr(runner, "threads"):
        runner.threads = 1  # a light check: this host may be timing something else
    with runner:
        report = parity.measure(eager, runner.infer, case.resolution, parity.FP32, samples=2)
    return {"max_abs_error": report.max_abs_error, "cosine": report.cosine, "passed": report.passed, "by": "eager"}


def build_plainly(case: Case, root: Path, rebuild: bool, get_model) -> None:
    """Export ``case`` plainly into ``root`` (or reuse it), check it once against eager, keep a sidecar record.

    ``get_model()`` gives the eager model; it is only called when there is something to export.
    """
    directory = root / case.model
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / ("model.onnx" if case.target == "onnx" else "model.pte")
    record_path = directory / "build.json"
    if rebuild or not (path.exists() and record_path.exists()):
        record_path.unlink(missing_ok=True)  # a half-done export must not be reused
        model = get_model()
        started = time.perf_counter()
        export_plainly(model, case.target, case.resolution, path)
        export_s = round(time.perf_counter() - started, 2)
        case.artifact, case.manifest = path, plain_manifest(case, path)
        record = {"export_s": export_s, "check": check_against_eager(model, case), "manifest": case.manifest}
        record_path.write_text(json.dumps(record, indent=2))
    record = json.loads(record_path.read_text())
    case.artifact, case.manifest = path, record["manifest"]
    case.export_s, case.check = record["export_s"], record["check"]
    if not case.check["passed"]:
        case.refused = (f"plain artifact disagrees with eager (max |err| {case.check['max_abs_error']:.2e}, "
                        f"cos {case.check['cosine']:.6f})")


def build_all(cases: list[Case], out: Path, rebuild: bool, progress, console) -> None:
    """Build every case (plain ones from the plain model, with the shared weights); a failure refuses that case."""
    from mobexport.errors import first_line

    from .quant_latency import latency_weights

    task = progress.add_task("build", total=len(cases))
    plain_models: dict[str, object] = {}
    for case in cases:
        progress.update(task, description=f"build {case.key}")
        weights = latency_weights(case.model, out / "weights")
        root = out / "artifacts" / case.build / f"{case.target}-{case.resolution}"
        try:
            if case.build == "mobexport":
                build_with_pipeline(case, root, rebuild, checkpoint=weights)
            else:
                def get_model(name=case.model, weights=weights):
                    if name not in plain_models:
                        plain_models[name] = plain_model(name, weights)
                    return plain_models[name]

                build_plainly(case, root, rebuild, get_model)
        except Exception as exc:  # one case's export failing is a result, not the end of the study
            case.refused = f"export failed: {type(exc).__name__}: {first_line(exc, 200)}"
        if case.refused:
            console.print(f"[yellow]not timed[/] {case.key}: {case.refused}", highlight=False)
        progress.advance(task)


# --------------------------------------------------------------------------- timing


def per_round(samples_ms: list[float], per_turn: int) -> list[float]:
    """One value per round: the median of the ``per_turn`` samples that round's turn took."""
    return [statistics.median(samples_ms[i:i + per_turn]) for i in range(0, len(samples_ms), per_turn)]


def paired_ratio(a: Case | None, b: Case | None, per_turn: int) -> float | None:
    """Median over rounds of a's time / b's time in the same round; None when either was not timed."""
    if a is None or b is None or not a.samples_ms or not b.samples_ms:
        return None
    rounds = zip(per_round(a.samples_ms, per_turn), per_round(b.samples_ms, per_turn))
    return statistics.median(x / y for x, y in rounds)


class LoadShowing:
    """The progress bar ``time_cases`` advances once a round, with the current 1-minute load average in its label."""

    def __init__(self, progress, label: str):
        self.progress, self.label = progress, label

    def advance(self, task, steps: int = 1) -> None:
        try:
            load = f", load {os.getloadavg()[0]:.2f}"
        except OSError:  # no load average on this platform
            load = ""
        self.progress.update(task, advance=steps, description=self.label + load)


def time_groups(cases: list[Case], groups: list[tuple[str, int, int]], rounds: int, per_turn: int,
                progress, console) -> dict:
    """Time each (target, resolution, threads) group interleaved; returns {group: {timed cases, load, error}}."""
    from .passes_benchmark import time_cases

    task = progress.add_task("time", total=len(groups) * rounds)
    results = {}
    for index, (target, res, threads) in enumerate(groups):
        group = [dataclasses.replace(c, samples_ms=[]) for c in cases
                 if c.target == target and c.resolution == res and not c.refused]
        shown = LoadShowing(progress, f"time {target} @{res} x{threads} thread(s)")
        shown.advance(task, 0)
        error, load = None, {}
        try:
            load = time_cases(group, rounds, per_turn, threads, shown, task) if group else {}
        except RuntimeError as exc:  # a worker could not load its artifact
            error = str(exc)
            console.print(f"[red]group {target} @{res} x{threads} failed:[/] {error}", highlight=False)
        if load:
            console.print(f"load average while timing {target} @{res} x{threads}: mean {load['mean']:.2f} "
                          f"(min {load['min']:.2f}, max {load['max']:.2f})", highlight=False)
        progress.update(task, completed=(index + 1) * rounds)  # an empty or failed group counts as done
        results[(target, res, threads)] = {"cases": {c.key: c for c in group}, "load_average": load, "error": error}
    return results


# --------------------------------------------------------------------------- reporting


def macs(case: Case | None) -> float | None:
    return ((case.manifest.get("macs") or {}).get("total_macs") if case and case.manifest else None)


def rows_for(models: list[str], baseline: str, built: dict, timed: dict, per_turn: int) -> list[dict]:
    """One row per (MF model, target, resolution, threads): medians, ratios and the goal verdict."""
    rows = []
    for (target, res, threads), result in timed.items():
        timed_cases = result["cases"]
        for model in models:
            plain_mf, plain_base, mx_mf, mx_base = (timed_cases.get(f"{b}/{m}/{target}/{res}") for b, m in (
                ("plain", model), ("plain", baseline), ("mobexport", model), ("mobexport", baseline)))
            mf_macs, base_macs = macs(built.get(f"mobexport/{model}/{target}/{res}")), \
                macs(built.get(f"mobexport/{baseline}/{target}/{res}"))
            ratio = paired_ratio(mx_mf, mx_base, per_turn)
            goal = GOALS.get(res)
            rows.append({
                "model": model, "baseline": baseline, "target": target, "resolution": res, "threads": threads,
                "median_ms": {f"{b}/{m}": (round(c.median, 3) if c and c.samples_ms else None)
                              for b, m, c in (("plain", "mf", plain_mf), ("plain", "baseline", plain_base),
                                              ("mobexport", "mf", mx_mf), ("mobexport", "baseline", mx_base))},
                "plain_mf_vs_baseline": _round(paired_ratio(plain_mf, plain_base, per_turn)),
                "mobexport_mf_vs_baseline": _round(ratio),
                "mobexport_mf_speedup_over_plain": _round(paired_ratio(plain_mf, mx_mf, per_turn)),
                "mobexport_baseline_speedup_over_plain": _round(paired_ratio(plain_base, mx_base, per_turn)),
                "macs_ratio": round(mf_macs / base_macs, 3) if mf_macs and base_macs else None,
                "macs": {"mf": mf_macs, "baseline": base_macs},
                "goal": None if goal is None else {"max_ratio": goal, "ratio": _round(ratio),
                                                    "met": None if ratio is None else ratio <= goal},
                "samples_per_case": min((len(c.samples_ms) for c in result["cases"].values()), default=0),
                "load_average": result["load_average"], "error": result["error"],
            })
    return rows


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _fmt(value, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def print_tables(summary: dict, console) -> None:
    from rich.table import Table

    rows = summary["rows"]
    for target in sorted({r["target"] for r in rows}):
        table = Table(title=f"{target}: plain export vs mobexport (ratios: median of per-round ratios; "
                            f"{summary['rounds']} rounds x {summary['per_round']} runs, interleaved)")
        for col in ("model", "res", "threads", "plain MF/base", "mobexport MF/base", "MF speed-up",
                    "plain MF ms", "plain base ms", "mobexport MF ms", "mobexport base ms", "MACs ratio", "load"):
            table.add_column(col, justify="left" if col == "model" else "right")
        for r in (r for r in rows if r["target"] == target):
            ms = r["median_ms"]
            table.add_row(r["model"], str(r["resolution"]), str(r["threads"]), _fmt(r["plain_mf_vs_baseline"]),
                          _fmt(r["mobexport_mf_vs_baseline"]), _fmt(r["mobexport_mf_speedup_over_plain"]),
                          _fmt(ms["plain/mf"]), _fmt(ms["plain/baseline"]), _fmt(ms["mobexport/mf"]),
                          _fmt(ms["mobexport/baseline"]), _fmt(r["macs_ratio"]),
                          _fmt((r["load_average"] or {}).get("mean"), ".1f"))
        console.print(table)
    for r in rows:
        if r["goal"] is None:
            continue
        g = r["goal"]
        verdict = ("[yellow]not measured[/]" if g["met"] is None else "[green]met[/]" if g["met"]
                   else "[red]not met[/]")
        console.print(f"goal {r['model']}/{r['baseline']} mobexport @{r['resolution']} on {r['target']} "
                      f"x{r['threads']}: {_fmt(g['ratio'])} (<= {g['max_ratio']}) {verdict}")
    for a in summary["artifacts"]:
        if a["refused"]:
            console.print(f"[yellow]not timed:[/] {a['key']}: {a['refused']}", highlight=False)


# --------------------------------------------------------------------------- main


def progress_bar(console):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console)


def split(text: str, kind=str) -> list:
    return [kind(t.strip()) for t in text.split(",") if t.strip()]


def wide_console():
    """A console; piped output (a log file, CI) gets room for the wide tables instead of 80 columns."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=170)


def run(args) -> dict:
    console = wide_console()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models, targets = split(args.models), split(args.runtimes)
    resolutions, threads = split(args.resolutions, int), split(args.threads, int)
    cases = [Case(m, b, t, r) for t in targets for r in resolutions for m in [*models, args.baseline]
             for b in BUILDS]
    groups = [(t, r, n) for t in targets for r in resolutions for n in threads]
    with progress_bar(console) as progress:
        build_all(cases, out, args.rebuild, progress, progress.console)
        timed = time_groups(cases, groups, args.rounds, args.per_round, progress, progress.console)
    built = {c.key: c for c in cases}
    summary = {
        "study": "compiler_benchmark", "models": models, "baseline": args.baseline, "rounds": args.rounds,
        "per_round": args.per_round, "ratio_statistic": "median of per-round ratios", "goals": GOALS,
        "macs_source": "total_macs of the mobexport manifests (the rewritten program at that resolution)",
        "rows": rows_for(models, args.baseline, built, timed, args.per_round),
        "artifacts": [{"key": c.key, "model": c.model, "build": c.build, "target": c.target,
                       "resolution": c.resolution, "file": str(c.artifact) if c.artifact else None,
                       "export_s": c.export_s, "check": c.check, "refused": c.refused} for c in cases],
        "samples_ms": {f"{t}/{r}/x{n}": {k: c.samples_ms for k, c in result["cases"].items()}
                       for (t, r, n), result in timed.items()},
        "host": {"cpus": os.cpu_count(), "platform": sys.platform},
    }
    (out / "compiler_benchmark.json").write_text(json.dumps(summary, indent=2))
    print_tables(summary, console)
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mobexport.benchmarks.studies.compiler_benchmark",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="Mobile-Former variants, comma-separated")
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--runtimes", default="onnx,executorch")
    parser.add_argument("--resolutions", default="224,512")
    parser.add_argument("--threads", default="1,2", help="runtime intra-op threads, comma-separated")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--per-round", type=int, default=2, help="inferences per case per round")
    parser.add_argument("--out", default="mobexport-out/compiler-benchmark")
    parser.add_argument("--rebuild", action="store_true", help="export again even where an artifact exists")
    args = parser.parse_args(argv)
    started = time.time()
    run(args)
    print(f"done in {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
