"""``bench --sustained``: one case timed continuously on a phone, and what it shows.

Writes ``sustained.json`` (every sample, every telemetry reading, the
buckets), ``sustained.md`` (the per-bucket table and the throttling ratio)
and ``sustained.png`` (latency and CPU temperature over time), and prints the
table and ratio.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from rich.console import Console
from rich.table import Table

from mobexport.devices.android_sustained import SustainedRun
from mobexport.manifest import write_text_atomic

from ..results.figures import device_caption, precision_caption, save_png, threads_caption

JSON_NAME, MD_NAME, PNG_NAME = "sustained.json", "sustained.md", "sustained.png"


def title_of(run: SustainedRun, quantization: str) -> str:
    case = run.case
    return (f"{case['model']} {case['kind']} @{case['resolution']} px, sustained {run.duration_s:g} s: "
            f"{device_caption(run.device_info)}, {threads_caption(case['threads'])}, {precision_caption(quantization)}")


def _bucket_label(run: SustainedRun, start_s: float) -> str:
    unit, scale = ("min", 60.0) if run.bucket_s >= 60 else ("s", 1.0)
    return f"{start_s / scale:g}–{(start_s + run.bucket_s) / scale:g} {unit}"


def ratio_line(run: SustainedRun) -> str:
    ratio = run.throttling_ratio
    if ratio is None:
        return "throttling ratio: n/a (fewer than two buckets with samples)"
    verdict = "slower" if ratio > 1 else "faster" if ratio < 1 else "unchanged"
    return (f"throttling ratio (last bucket median / first bucket median): {ratio:.3f} "
            f"({abs(ratio - 1) * 100:.1f}% {verdict} at the end)")


def markdown(run: SustainedRun, quantization: str) -> str:
    lines = [f"# {title_of(run, quantization)}", "", ratio_line(run), "",
             f"Pinned to cores {','.join(map(str, run.affinity))}; {len(run.samples)} samples, "
             f"{len(run.telemetry)} telemetry readings, buckets of {run.bucket_s:g} s.", "",
             "| bucket | samples | median ms | CPU °C | big-core MHz |", "|---|---:|---:|---:|---:|"]
    for b in run.buckets:
        lines.append(f"| {_bucket_label(run, b.start_s)} | {b.samples} | "
                     f"{'' if b.median_ms is None else f'{b.median_ms:.2f}'} | "
                     f"{'' if b.cpu_temperature_c is None else f'{b.cpu_temperature_c:.1f}'} | "
                     f"{'' if b.big_core_khz is None else f'{b.big_core_khz / 1000:.0f}'} |")
    lines += ["", "Tool versions: " + ", ".join(f"{k} {v}" for k, v in run.tool_versions.items())]
    lines += [f"Note: {n}" for n in run.notes]
    return "\n".join(lines) + "\n"


def plot(run: SustainedRun, path: Path, quantization: str) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4.8))
    ax = fig.add_subplot(1, 1, 1)
    if run.samples:
        ax.plot([t for t, _ in run.samples], [ms for _, ms in run.samples], ".", ms=2, alpha=0.35,
                color="tab:blue", label="each inference")
    filled = [b for b in run.buckets if b.median_ms is not None]
    ax.step([b.start_s for b in filled] + ([filled[-1].end_s] if filled else []),
            [b.median_ms for b in filled] + ([filled[-1].median_ms] if filled else []), where="post",
            color="tab:blue", lw=2, label=f"median per {run.bucket_s:g} s")
    if run.samples:
        import numpy as np

        top = float(np.percentile([ms for _, ms in run.samples], 99)) * 1.3
        ax.set_ylim(0, max(top, max(b.median_ms for b in filled) * 1.2 if filled else top))
        ax.text(0.99, 0.01, "y axis cut at 1.3 x p99", transform=ax.transAxes, ha="right", va="bottom", fontsize=7)
    ax.set_xlabel("time since start (s)")
    ax.set_ylabel("latency (ms)", color="tab:blue")
    temps = [(r["t_s"], r["cpu_temperature_c"]) for r in run.telemetry if r["cpu_temperature_c"] is not None]
    if temps:
        hot = ax.twinx()
        hot.plot([t for t, _ in temps], [c for _, c in temps], "-o", ms=3, color="tab:red", label="CPU temperature")
        hot.set_ylabel("CPU temperature (°C)", color="tab:red")
    # The device and conditions run long: wrapped, so that the title stays inside the figure.
    ax.set_title("\n".join([*textwrap.wrap(title_of(run, quantization), 110), ratio_line(run)]), fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return save_png(fig, path)


def write(run: SustainedRun, out_dir: Path, quantization: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    data = run.to_dict()
    data["quantization"] = quantization
    written = [write_text_atomic(out_dir / JSON_NAME, json.dumps(data, indent=1) + "\n"),
               write_text_atomic(out_dir / MD_NAME, markdown(run, quantization))]
    written.append(plot(run, out_dir / PNG_NAME, quantization))
    return written


def print_report(console: Console, run: SustainedRun, quantization: str, out_dir: Path) -> None:
    table = Table(title=title_of(run, quantization))
    for column in ("bucket", "samples", "median ms", "CPU °C", "big-core MHz"):
        table.add_column(column, justify="left" if column == "bucket" else "right")
    for b in run.buckets:
        table.add_row(_bucket_label(run, b.start_s), str(b.samples),
                      "" if b.median_ms is None else f"{b.median_ms:.2f}",
                      "" if b.cpu_temperature_c is None else f"{b.cpu_temperature_c:.1f}",
                      "" if b.big_core_khz is None else f"{b.big_core_khz / 1000:.0f}")
    console.print(table)
    console.print(ratio_line(run), highlight=False)
    console.print(f"written: {out_dir / JSON_NAME}, {out_dir / MD_NAME}, {out_dir / PNG_NAME}", highlight=False)


def run_sustained_bench(plan, policy, device, out_dir: Path, duration: str, bucket: str | None,
                        console: Console, err_console: Console) -> int:
    """The ``bench --sustained`` path: exactly one case, exported as a sweep would, then timed without pause."""
    from mobexport.devices.android import AndroidDevice
    from mobexport.devices.android_sustained import parse_duration, run_sustained
    from mobexport.devices.device import CaseJob
    from mobexport.errors import BenchmarkError

    from .artifacts import prepare

    duration_s = parse_duration(duration)
    bucket_s = parse_duration(bucket, "--sustained-bucket") if bucket else 60.0
    cases = plan.cases()
    if len(cases) != 1:
        raise BenchmarkError(f"--sustained times one case, but the sweep has {len(cases)}",
                             "give one model, one target, one resolution and one thread count")
    if not isinstance(device, AndroidDevice):
        raise BenchmarkError(f"--sustained reads a phone's thermal zones and core clocks: '{device.name}' has neither",
                             "use --device adb[:SERIAL]")
    case = cases[0]
    prepared = prepare(case, out_dir, on_step=lambda step: err_console.print(f"{case.model}: {step}", highlight=False))
    job = CaseJob(kind=case.target, model=case.model, resolution=case.resolution, batch=case.batch,
                  threads=case.threads, artifact_path=prepared.artifact.path if prepared.artifact else None,
                  policy=policy, label=str(case))
    run = run_sustained(device, job, duration_s, bucket_s)
    write(run, out_dir, case.quantization)
    print_report(console, run, case.quantization, out_dir)
    return 0
