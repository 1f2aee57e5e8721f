"""Where the time goes: a per-operator profile of several models on one runtime, side by side.

The question issue-level latency ratios leave open ("Mobile-Former is 1.9x
MobileNetV3's latency for 1.3x its MACs: in which ops?") is answered by
ONNX Runtime's own profiler (``SessionOptions.enable_profiling``), the tool
ORT's perf docs point to. Each model is exported static at ``--resolution``
with the default passes (or ``--passes``) and run ``--warmup + --runs``
times under the profiler; the warm-up runs' events are dropped, and every
other ``Node`` event of the trace is summed per ORT op type (after ORT's own
fusions, so ``FusedConv`` is a conv with its activation) and divided by the
number of runs.

    mobexport profile --models mobile_former_294m,mobilenet_v3_large_100 \\
        --resolution 224 --out op-profile [--target executorch]

``--target executorch`` profiles the XNNPACK program instead, with
ExecuTorch's own event tracer (ETDump, read by ``executorch.devtools.Inspector``):
every XNNPACK operator the delegate runs is an event (``Fully Connected (NC,
F32) GEMM #12``); the median over the runs of each event is summed per
operator kind (the name without its ``#N``).

prints a side-by-side table of the op types that matter, and writes ``profile.json`` and ``op_time.png`` (stacked bars). Each
model is profiled in its own process (ORT's worker threads of one session
slow the next one on a small machine); ``--threads 1`` (the default) makes
the per-op split that of a single core, as on a phone's big core.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from mobexport.benchmarks.results.figures import save_png

RUNTIMES = {"onnx": "ONNX Runtime", "executorch": "ExecuTorch-XNNPACK"}


def profile_events(trace_path: Path) -> list[dict]:
    """The ``Node`` events (one per operator execution) of an ORT profile trace."""
    events = json.loads(Path(trace_path).read_text())
    return [e for e in events if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")]


def per_op_type(events: list[dict], runs: int) -> dict[str, dict]:
    """{op type: {"ms": per run, "nodes": distinct nodes}}, most expensive first."""
    totals: dict[str, float] = defaultdict(float)
    nodes: dict[str, set] = defaultdict(set)
    for e in events:
        op = e.get("args", {}).get("op_name", "?")
        totals[op] += float(e["dur"]) / 1000.0
        nodes[op].add(e["name"])
    rows = {op: {"ms": ms / runs, "nodes": len(nodes[op])} for op, ms in totals.items()}
    return dict(sorted(rows.items(), key=lambda kv: -kv[1]["ms"]))


def profile_model(model: str, resolution: int, passes: str, runs: int, warmup: int, threads: int,
                  work: Path, target: str = "onnx") -> dict:
    """Export ``model`` static and profile it on ``target``'s runtime in this process."""
    return PROFILERS[target](model, resolution, passes, runs, warmup, threads, work)


def profile_onnx(model: str, resolution: int, passes: str, runs: int, warmup: int, threads: int,
                 work: Path) -> dict:
    """ONNX Runtime's profiler: ``Node`` events summed per ORT op type, per run."""
    from mobexport.config import ExportConfig
    from mobexport.devices.runtimes.onnxruntime import OnnxRuntimeRunner
    from mobexport.export.pipeline import export_model

    artifact = export_model(ExportConfig(model=model, target="onnx", resolution=resolution, dynamic=False,
                                         passes=passes, out_dir=work / "artifacts", parity_samples=2))
    x = np.random.default_rng(0).standard_normal((1, 3, resolution, resolution)).astype(np.float32)
    runner = OnnxRuntimeRunner(artifact.path, threads=threads, profile_dir=work)
    for _ in range(warmup + runs):
        runner.infer(x)
    trace = Path(runner.end_profiling())
    events = profile_events(trace)
    per_run = len(events) // (warmup + runs)  # every run executes the same nodes, in order
    ops = per_op_type(events[warmup * per_run:], runs)
    return {"model": model, "resolution": resolution, "passes": passes, "threads": threads, "runs": runs,
            "target": "onnx", "macs": artifact.manifest.macs.get("total_macs"),
            "total_ms": sum(r["ms"] for r in ops.values()), "ops": ops, "trace": str(trace)}


# ETDump events that wrap the operators rather than being one.
ETDUMP_WRAPPERS = ("Method::execute", "DELEGATE_CALL", "OPERATOR_CALL", "Program::load_method", "Method::init")


def etdump_per_op_kind(events: list[tuple[str, float]]) -> dict[str, dict]:
    """{operator kind: {"ms", "nodes"}} from (event name, median ms) pairs; ``#N`` suffixes dropped."""
    totals: dict[str, float] = defaultdict(float)
    nodes: dict[str, int] = defaultdict(int)
    for name, ms in events:
        if name in ETDUMP_WRAPPERS:
            continue
        kind = re.sub(r"\s*#\d+$", "", name)
        totals[kind] += ms
        nodes[kind] += 1
    rows = {kind: {"ms": ms, "nodes": nodes[kind]} for kind, ms in totals.items()}
    return dict(sorted(rows.items(), key=lambda kv: -kv[1]["ms"]))


def profile_executorch(model: str, resolution: int, passes: str, runs: int, warmup: int, threads: int,
                       work: Path) -> dict:
    """ExecuTorch's event tracer over the XNNPACK program: each operator's median, summed per kind."""

    import torch

    from mobexport.config import ExportConfig
    from mobexport.errors import MissingDependencyError
    from mobexport.export.pipeline import export_model

    try:
        from executorch.devtools import Inspector
        from executorch.extension.pybindings import portable_lib
    except ImportError as exc:
        raise MissingDependencyError("executorch", "executorch", "--target executorch profiling") from exc
    artifact = export_model(ExportConfig(model=model, target="executorch", resolution=resolution, dynamic=False,
                                         passes=passes, out_dir=work / "artifacts", parity_samples=2,
                                         target_options={"backend": "xnnpack"}))
    if threads > 0:
        portable_lib._unsafe_reset_threadpool(threads)
    module = portable_lib._load_for_executorch(str(artifact.path), enable_etdump=True, debug_buffer_size=0)
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 3, resolution, resolution), dtype=np.float32))
    for _ in range(warmup):
        module.forward([x])
    module.write_etdump_result_to_file(str(work / f"{model}.warmup.etdp"))  # starts a fresh trace
    for _ in range(runs):
        module.forward([x])
    trace = work / f"{model}.etdp"
    module.write_etdump_result_to_file(str(trace))
    frame = Inspector(etdump_path=str(trace)).to_dataframe()  # its warnings obey mobexport.logs, as the export's
    frame = frame[frame["event_block_name"] == "Execute"]
    ops = etdump_per_op_kind(list(zip(frame["event_name"], frame["p50 (ms)"])))
    return {"model": model, "resolution": resolution, "passes": passes, "threads": threads, "runs": runs,
            "target": "executorch", "macs": artifact.manifest.macs.get("total_macs"),
            "total_ms": sum(r["ms"] for r in ops.values()), "ops": ops, "trace": str(trace)}


# artifact kind -> profiler in this process, and the export options each needs
PROFILERS = {"onnx": profile_onnx, "executorch": profile_executorch}
PROFILE_EXPORT_OPTIONS = {"executorch": {"backend": "xnnpack", "etrecord": True}}


def comparison_rows(profiles: list[dict], top: int = 12) -> list[tuple[str, list[float]]]:
    """(op type, ms per model) for the op types that take the most time across the models."""
    weight: dict[str, float] = defaultdict(float)
    for p in profiles:
        for op, row in p["ops"].items():
            weight[op] += row["ms"]
    chosen = sorted(weight, key=lambda op: -weight[op])[:top]
    rows = [(op, [p["ops"].get(op, {}).get("ms", 0.0) for p in profiles]) for op in chosen]
    rest = [p["total_ms"] - sum(p["ops"].get(op, {}).get("ms", 0.0) for op in chosen) for p in profiles]
    return rows + [("(other)", rest)]


def print_tables(profiles: list[dict], console: Console) -> None:
    rows = comparison_rows(profiles)
    runtime = RUNTIMES[profiles[0].get("target", "onnx")]
    table = Table(title=f"{runtime} time per op type, ms per inference @{profiles[0]['resolution']} "
                        f"({profiles[0]['threads']} thread(s), {profiles[0]['runs']} profiled runs)")
    table.add_column("op type")
    for p in profiles:
        table.add_column(p["model"], justify="right")
        table.add_column("share", justify="right")
    if len(profiles) == 2:
        table.add_column("diff ms", justify="right")
    for op, values in rows:
        cells = []
        for p, v in zip(profiles, values):
            cells += [f"{v:.2f}", f"{100 * v / p['total_ms']:.0f}%"]
        if len(profiles) == 2:
            cells.append(f"{values[0] - values[1]:+.2f}")
        table.add_row(op, *cells)
    totals = []
    for p in profiles:
        totals += [f"{p['total_ms']:.2f}", ""]
    if len(profiles) == 2:
        totals.append(f"{profiles[0]['total_ms'] - profiles[1]['total_ms']:+.2f}")
    table.add_row("[bold]total (node time)[/]", *totals)
    console.print(table)
    if len(profiles) == 2 and profiles[1]["total_ms"] > 0:
        a, b = profiles
        macs = f", MACs ratio {a['macs'] / b['macs']:.2f}" if a.get("macs") and b.get("macs") else ""
        console.print(f"{a['model']} / {b['model']}: node time ratio {a['total_ms'] / b['total_ms']:.2f}{macs}")


PROFILER_NOTE = {
    "onnx": "Profiled node time: every node includes the profiler's own per-node overhead (about 10 µs), so a "
            "model with many small nodes looks slower here than unprofiled; its real latency is what "
            "'mobexport bench' measures.",
    "executorch": "Profiled operator time: every traced operator includes the event tracer's per-event "
                  "overhead, so a model with many small operators looks slower here than unprofiled; its "
                  "real latency is what 'mobexport bench' measures.",
}


def plot(profiles: list[dict], path: Path) -> Path:
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mobexport.benchmarks.results.figures import device_caption, threads_caption

    target = profiles[0].get("target", "onnx")
    rows = comparison_rows(profiles, top=8)
    fig, ax = plt.subplots(figsize=(7.5, 5.6))
    bottom = np.zeros(len(profiles))
    for op, values in rows:
        ax.bar([p["model"] for p in profiles], values, bottom=bottom, label=op)
        bottom += np.array(values)
    ax.set_ylabel(f"profiled ms per inference ({RUNTIMES[target]} op time)")
    where = f"on {device_caption(profiles[0].get('device'))}; includes the profiler's per-node overhead"
    ax.set_title("\n".join([f"Where the time goes @{profiles[0]['resolution']}: {RUNTIMES[target]}, fp32, "
                             f"{threads_caption(profiles[0]['threads'])}", *textwrap.wrap(where, 80)]), fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    fig.text(0.01, 0.01, textwrap.fill(PROFILER_NOTE[target], 110), fontsize=7, va="bottom")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return save_png(fig, path)
