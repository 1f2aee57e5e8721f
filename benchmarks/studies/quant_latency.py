"""int8 vs fp32 latency on this CPU, measured side by side, one process per case.

``python -m mobexport.benchmarks.studies.quant_latency --models mobile_former_294m,mobilenet_v3_large_100
--targets onnx,executorch --resolution 224 --calib DIR``

exports each (model, target) twice, fp32 and ``--quantize int8`` (artifacts are
reused when a matching manifest is already in ``--out``), then measures them in
rounds: every round runs each case once, in a shuffled order, each case in its
own worker process (:class:`~mobexport.devices.local.LocalDevice`), so the
fp32 and int8 numbers of a pair are taken minutes apart at most, under the
same machine load. The reported latency of a case is the median of its
per-round medians, the speed-up is fp32 / int8 of those; rounds are kept in
``results.json`` so the spread can be checked. A table is printed and
``latency.png`` plotted (each pair labelled "int8/fp32 latency": below 1 int8 is
faster), and, where the int8 manifests carry an accuracy report,
``accuracy_vs_latency.png``.

Weights: latency does not depend on weight values, but the export's parity
check needs logits with a signal, and a random-init MobileNetV3 (torch's
``fan_out`` counts every channel of a depthwise conv) gives logits of ~1e-9
that int8 rounds to zero. Each model is therefore exported from a checkpoint
of random weights drawn with He-normal over one group's fan-out (timm's
rule), written to ``--out`` and recorded in the manifests; fp32 and int8 use
the same file. ``--checkpoint-dir`` uses trained ``<model>.pt`` files instead.

A timing goal belongs here, not in a unit test: on a shared machine the
ratio is what is meaningful, the absolute numbers are not.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Sequence

from rich.console import Console
from rich.table import Table

from mobexport.config import ExportConfig
from mobexport.devices.device import CaseJob
from mobexport.devices.interleaved import time_interleaved
from mobexport.devices.local import LocalDevice
from mobexport.devices.measure import MeasurePolicy
from mobexport.errors import MobexportError
from mobexport.export.artifact import Artifact
from mobexport.manifest import write_text_atomic

from mobexport.benchmarks.results.figures import device_caption, save_png, threads_caption

MODES = ("none", "int8")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mobexport.benchmarks.studies.quant_latency",
                                description="int8 vs fp32 latency, side by side, one process per case.")
    p.add_argument("--models", default="mobile_former_294m,mobilenet_v3_large_100")
    p.add_argument("--targets", default="onnx,executorch")
    p.add_argument("--resolution", type=int, default=224)
    p.add_argument("--calib", type=Path, help="calibration images for the int8 exports")
    p.add_argument("--calib-samples", type=int, default=64)
    p.add_argument("--rounds", type=int, default=5, help="rounds over all cases (default: 5)")
    p.add_argument("--min-time", type=float, default=1.0, help="seconds of timed inference per case per round")
    p.add_argument("--threads", type=int, default=0, help="runtime threads, 0 = runtime default")
    p.add_argument("--out", type=Path, default=Path("mobexport-bench-quant"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-dir", type=Path, help="trained <model>.pt files (default: random weights, see above)")
    return p


def latency_weights(model: str, directory: Path) -> Path:
    """A checkpoint of ``model`` with random weights whose activations keep their scale (see the module doc)."""
    import torch

    from mobexport.models import create_model

    path = directory / f"{model}.pt"
    if path.is_file():
        return path
    torch.manual_seed(0)
    net = create_model(model)
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            torch.nn.init.normal_(m.weight, 0.0, (2.0 / fan_out) ** 0.5)
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return path


def artifact_for(model: str, target: str, mode: str, args) -> Artifact:
    from mobexport.export.pipeline import export_model

    directory = args.out / "artifacts" / mode
    existing = directory / model / target / "manifest.json"
    if existing.is_file():
        artifact = Artifact.open(existing)
        if artifact.manifest.resolution["export"] == args.resolution and artifact.verify_hash():
            return artifact
    checkpoint = (args.checkpoint_dir / f"{model}.pt" if args.checkpoint_dir
                  else latency_weights(model, args.out / "weights"))
    config = ExportConfig(model=model, target=target, resolution=args.resolution, out_dir=directory, dynamic=False,
                          checkpoint=checkpoint, quantize=mode, calib_dir=args.calib if mode != "none" else None,
                          calib_samples=args.calib_samples, parity_samples=2,
                          target_options={"backend": "xnnpack", "precision": None})
    return export_model(config)


def export_cases(models: list[str], targets: list[str], args, console) -> tuple[list[tuple], dict]:
    """Export fp32 and int8 of each (model, target); a pair whose export fails is left out, with its reason."""
    cases, failed = [], {}
    for model in models:
        for target in targets:
            pair = []
            for mode in MODES:
                console.print(f"exporting {model} / {target} / {mode} @{args.resolution}", highlight=False)
                try:
                    pair.append((model, target, mode, artifact_for(model, target, mode, args)))
                except MobexportError as exc:
                    failed[(model, target)] = f"{mode} export failed: {exc.one_line()}"
                    console.print(f"[yellow]skipping {model} / {target}:[/] {failed[(model, target)]}")
                    break
            else:
                cases.extend(pair)
    return cases, failed


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from mobexport import logs

    logs.ensure_setup()  # third-party noise obeys the one logging setup, as in every command
    console = Console(width=150)
    models = [m for m in args.models.split(",") if m]
    targets = [t for t in args.targets.split(",") if t]
    args.out.mkdir(parents=True, exist_ok=True)
    cases, failed = export_cases(models, targets, args, console)
    if not cases:
        console.print("[bold red]error:[/] no (model, target) pair exported; nothing to measure")
        return 1
    try:
        device = LocalDevice()
        policy = MeasurePolicy(min_time_s=args.min_time, min_iters=10, warmup_time_s=0.3)
        from rich.progress import Progress

        def turn(model: str, target: str, mode: str, artifact: Artifact) -> list[float]:
            """One case measured in its own process: the median of its samples (ms)."""
            job = CaseJob(kind=target, model=model, resolution=args.resolution, threads=args.threads,
                          artifact_path=artifact.path, manifest=json.loads(artifact.manifest.to_json()),
                          policy=policy, label=mode)
            return [statistics.median(device.measure(job).samples_s) * 1e3]

        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("measuring", total=args.rounds * len(cases))
            medians = time_interleaved({c[:3]: (lambda c=c: turn(*c)) for c in cases}, args.rounds, order="shuffle",
                                       seed=args.seed, on_turn=lambda _: progress.advance(task)).samples
    except MobexportError as exc:
        console.print(f"[bold red]error:[/] {exc.one_line()}")
        return exc.exit_code

    rows = []
    for model in models:
        for target in targets:
            if (model, target) in failed:
                rows.append({"model": model, "target": target, "resolution": args.resolution,
                             "failed": failed[(model, target)]})
                continue
            fp32 = statistics.median(medians[(model, target, "none")])
            int8 = statistics.median(medians[(model, target, "int8")])
            sizes = {mode: next(a for m, t, md, a in cases if (m, t, md) == (model, target, mode)).manifest.artifact[
                "size_bytes"] for mode in MODES}
            rows.append({"model": model, "target": target, "resolution": args.resolution,
                         "fp32_ms": round(fp32, 3), "int8_ms": round(int8, 3), "speedup": round(fp32 / int8, 2),
                         "fp32_rounds_ms": [round(v, 3) for v in medians[(model, target, "none")]],
                         "int8_rounds_ms": [round(v, 3) for v in medians[(model, target, "int8")]],
                         "fp32_file_bytes": sizes["none"], "int8_file_bytes": sizes["int8"],
                         **accuracy_of(next(a for m, t, md, a in cases if (m, t, md) == (model, target, "int8")))})
    table = Table(title=f"int8 vs fp32 latency @{args.resolution}, median of {args.rounds} interleaved rounds")
    for column in ("model", "target", "fp32 ms", "int8 ms", "int8/fp32 latency", "fp32 file", "int8 file"):
        table.add_column(column, justify="left" if column in ("model", "target") else "right")
    for r in rows:
        if "failed" in r:
            table.add_row(r["model"], r["target"], "export failed", "", "", "", "")
            continue
        table.add_row(r["model"], r["target"], f"{r['fp32_ms']:.2f}", f"{r['int8_ms']:.2f}", f"{r['int8_ms'] / r['fp32_ms']:.2f}",
                      f"{r['fp32_file_bytes'] / 1e6:.1f} MB", f"{r['int8_file_bytes'] / 1e6:.1f} MB")
    console.print(table)
    for (model, target), reason in failed.items():
        console.print(f"{model} / {target}: not measured, {reason}", highlight=False)
    device_info = LocalDevice().info()
    write_text_atomic(args.out / "results.json", json.dumps({"rows": rows, "threads": args.threads,
                                                             "min_time_s": args.min_time, "device": device_info},
                                                            indent=2) + "\n")
    measured = [r for r in rows if "failed" not in r]
    written = [plot(measured, args.out / "latency.png", args.resolution, args.threads, device_info)]
    accuracy_plot = plot_accuracy(measured, args.out / "accuracy_vs_latency.png", args.resolution, args.threads,
                                  device_info)
    if accuracy_plot is not None:
        written.append(accuracy_plot)
    console.print(f"wrote {args.out / 'results.json'} and {', '.join(str(p) for p in written)}", highlight=False)
    return 0


def accuracy_of(artifact) -> dict:
    """The int8 artifact's accuracy against its float model, as its manifest records it (or nothing).

    ``top1`` (labelled evaluation: a trained fixture) or ``top1_agreement``
    (the quantized model's top-1 equals the float model's) and where it was
    measured; the float model agrees with itself, so fp32's agreement is 1.
    """
    accuracy = (artifact.manifest.quantization or {}).get("accuracy") or {}
    facts = {}
    if "quantized_top1" in accuracy:
        facts.update(fp32_top1=accuracy["float_top1"], int8_top1=accuracy["quantized_top1"])
    if "top1_agreement" in accuracy:
        facts.update(int8_top1_agreement=accuracy["top1_agreement"],
                     accuracy_evaluated_on=accuracy.get("evaluated_on", ""))
    return facts


def _caption(resolution: int, threads: int, device_info: dict | None) -> str:
    return (f"@{resolution} px, {threads_caption(threads)}, on {device_caption(device_info)} "
            "\n(one process per case, interleaved rounds)")


def plot(rows: list[dict], path: Path, resolution: int, threads: int = 0, device_info: dict | None = None) -> Path:
    """fp32 and int8 latency side by side; each pair labelled with int8's latency as a fraction of fp32's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['model']}\n{r['target']}" for r in rows]
    x = range(len(rows))
    fig, ax = plt.subplots(figsize=(max(6, 2.4 * len(rows)), 4.4))
    ax.bar([i - 0.2 for i in x], [r["fp32_ms"] for r in rows], width=0.4, label="fp32")
    ax.bar([i + 0.2 for i in x], [r["int8_ms"] for r in rows], width=0.4, label="int8")
    for i, r in zip(x, rows):
        ax.text(i + 0.2, r["int8_ms"], f"int8/fp32\nlatency {r['int8_ms'] / r['fp32_ms']:.2f}", ha="center",
                va="bottom", fontsize=7)
    ax.set_xticks(list(x), labels, fontsize=8)
    ax.set_ylabel(f"median latency @{resolution} (ms)")
    ax.set_title(f"int8 vs fp32 latency\n{_caption(resolution, threads, device_info)}", fontsize=9)
    ax.margins(y=0.15)
    ax.legend()
    fig.tight_layout()
    return save_png(fig, path, dpi=120, hint="choose another --out")


def plot_accuracy(rows: list[dict], path: Path, resolution: int, threads: int = 0,
                  device_info: dict | None = None) -> Path | None:
    """Accuracy against latency, fp32 and int8 of each (model, target) joined by an arrow.

    Top-1 when every row has labelled accuracy, else top-1 agreement with
    the float model (fp32 at 1 by definition); None when no row has either.
    """
    known = [r for r in rows if "int8_top1" in r or "int8_top1_agreement" in r]
    if not known:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labelled = all("int8_top1" in r for r in known)
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for i, r in enumerate(known):
        fp32 = 100 * (r["fp32_top1"] if labelled else 1.0)
        int8 = 100 * (r["int8_top1"] if labelled else r["int8_top1_agreement"])
        color = f"C{i % 10}"
        ax.scatter([r["fp32_ms"]], [fp32], marker="o", color=color, label=f"{r['model']} / {r['target']}: fp32")
        ax.scatter([r["int8_ms"]], [int8], marker="s", color=color, label=f"{r['model']} / {r['target']}: int8")
        ax.annotate("", xy=(r["int8_ms"], int8), xytext=(r["fp32_ms"], fp32),
                    arrowprops=dict(arrowstyle="->", color=color, alpha=0.6))
    ax.set_xlabel(f"median latency @{resolution} (ms)")
    ax.set_ylabel("top-1 (%)" if labelled else "top-1 agreement with the fp32 model (%)")
    where = "labelled held-out images" if labelled else (known[0].get("accuracy_evaluated_on") or "held-out inputs")
    ax.set_title(f"accuracy vs latency, fp32 → int8 (accuracy on {where})\n"
                 f"{_caption(resolution, threads, device_info)}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return save_png(fig, path, dpi=120, hint="choose another --out")


if __name__ == "__main__":
    sys.exit(main())
