"""Export every (model, target) pair and tabulate what the manifests say.

    python -m mobexport.benchmarks.studies.export_table --models 'cmt*,deit*' --targets onnx
    python -m mobexport.benchmarks.studies.export_table --models mobile_former_294m,mobilenet_v3_large_100 \\
        --targets onnx,executorch,coreml,tensorrt --resolution 224
    python -m mobexport.benchmarks.studies.export_table --models mobile_former_26m,mobilenet_v3_small_100 \\
        --targets onnx,executorch --quantize none,fp16,int8 --fixtures

Each export runs through :func:`mobexport.export.pipeline.export_model`, exactly
as ``mobexport --model M --target T`` does (parity-checked at the export
resolution and one other), one after another in this process. Printed and
written to ``OUT/export_table.{json,md}``: params (the model's) and MACs at the
export resolution against the check table, wall time of the export, artifact
size, the worst parity figures over the measured resolutions, and for
ExecuTorch its delegation coverage and planned activation memory.

``--fixtures`` exports each model's trained Synthetic Shapes fixture (trained
and cached on first use, see docs/fixtures.md) at the fixture resolution, with
calibration images drawn from the dataset's calibration split: the quantized
rows then carry held-out top-1 of float and quantized, their agreement, the
logits SQNR and the weight-size ratio, from the manifest's accuracy report.

Export time is a wall-clock figure of one run on whatever machine this is;
it is a guide to what a user waits, not a benchmark.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from mobexport.config import ExportConfig
from mobexport.errors import MobexportError
from mobexport.export.pipeline import export_model
from mobexport.manifest import Manifest
from mobexport.models import get_spec, list_models
from mobexport.report import human_bytes, human_count

COLUMNS = ("model", "target", "quant", "res", "params", "ref params", "MACs", "ref MACs", "export s", "size",
           "max|err|", "cosine", "top-1", "parity @", "XNNPACK", "planned mem",
           "top-1 float", "top-1 quant", "agreement", "SQNR dB", "weights x")


def row_of(manifest: Manifest, seconds: float) -> dict:
    """One table row from a finished artifact's manifest."""
    parity = manifest.parity
    details = manifest.target_details or {}
    return {
        "model": manifest.model["name"],
        "target": manifest.target,
        "quantize": manifest.quantization.get("mode", "none"),
        "resolution": manifest.resolution["export"],
        "dynamic": manifest.resolution["dynamic"],
        "params": manifest.params,
        "reference_params": manifest.model.get("reference_params"),
        "macs": manifest.macs.get("total_macs"),
        "reference_macs": manifest.model.get("reference_macs"),
        "export_s": round(seconds, 2),
        "size_bytes": manifest.artifact["size_bytes"],
        "max_abs_error": max((p["max_abs_error"] for p in parity), default=None),
        "cosine": min((p["cosine"] for p in parity), default=None),
        "top1_agreement": min((p["top1_agreement"] for p in parity), default=None),
        "parity_resolutions": [p["resolution"] for p in parity],
        "tolerance": manifest.tolerance.get("name"),
        "delegate_subgraphs": details.get("delegate_subgraphs"),
        "op_coverage": details.get("op_coverage"),
        "mac_coverage": details.get("mac_coverage"),
        "planned_memory_bytes": details.get("planned_memory_bytes"),
        "notes": manifest.notes,
        **_quantization_facts(manifest.quantization),
    }


def _quantization_facts(q: dict) -> dict:
    accuracy = q.get("accuracy") or {}
    return {
        "float_top1": accuracy.get("float_top1"),
        "quantized_top1": accuracy.get("quantized_top1"),
        "top1_agreement_heldout": accuracy.get("top1_agreement"),
        "logits_sqnr_db": accuracy.get("logits_sqnr_db"),
        "heldout_samples": accuracy.get("samples"),
        "weights_ratio": (q.get("weights") or {}).get("ratio"),
    }


def _cells(row: dict) -> list[str]:
    def ratio(ours, ref):
        return f" ({ours / ref - 1:+.2%})" if ours and ref else ""

    xnn = ("" if row["delegate_subgraphs"] is None else
           f"{row['delegate_subgraphs']} subgr, {row['op_coverage']:.0%} ops, {row['mac_coverage']:.1%} MACs")
    def pct(v):
        return "" if v is None else f"{v:.1%}"

    return [
        row["model"], row["target"], row["quantize"], str(row["resolution"]) + (" dyn" if row["dynamic"] else ""),
        human_count(row["params"]) + ratio(row["params"], row["reference_params"]),
        human_count(row["reference_params"]) if row["reference_params"] else "-",
        human_count(row["macs"]) + ratio(row["macs"], row["reference_macs"]) if row["macs"] else "-",
        human_count(row["reference_macs"]) if row["reference_macs"] else "-",
        f"{row['export_s']:.1f}", human_bytes(row["size_bytes"]),
        "-" if row["max_abs_error"] is None else f"{row['max_abs_error']:.2e}",
        "-" if row["cosine"] is None else f"{row['cosine']:.6f}",
        "-" if row["top1_agreement"] is None else f"{row['top1_agreement']:.0%}",
        ",".join(map(str, row["parity_resolutions"])) or "not run here",
        xnn, "" if row["planned_memory_bytes"] is None else human_bytes(row["planned_memory_bytes"]),
        pct(row["float_top1"]), pct(row["quantized_top1"]), pct(row["top1_agreement_heldout"]),
        "" if row["logits_sqnr_db"] is None else f"{row['logits_sqnr_db']:.1f}",
        "" if row["weights_ratio"] is None else f"{row['weights_ratio']:.2f}",
    ]


def _fixture_options(models: list[str], out: Path) -> dict[str, dict]:
    """Trained checkpoint, class count, resolution and calibration images of each model's fixture."""
    from mobexport.benchmarks.fixtures.training import DEFAULT_RESOLUTION, RichReporter, ensure_fixture
    from mobexport.models.datasets.synthetic_shapes import NUM_CLASSES, write_png_tree

    calib_dir = out / "calibration-images"
    if not calib_dir.exists():
        # Larger than the model's input, so the model's own resize and centre crop are exercised.
        write_png_tree(calib_dir, 256, DEFAULT_RESOLUTION + 14, seed=0, split="calib")
    reporter = RichReporter(Console(stderr=True))
    return {m: {"checkpoint": ensure_fixture(m, DEFAULT_RESOLUTION, reporter=reporter), "num_classes": NUM_CLASSES,
                "resolution": DEFAULT_RESOLUTION, "calib_dir": calib_dir} for m in models}


def markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(_cells(row)) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mobexport.benchmarks.studies.export_table", description=__doc__.split("\n")[0])
    p.add_argument("--models", default="*", help="comma-separated names or globs (default: the whole zoo)")
    p.add_argument("--targets", default="onnx")
    p.add_argument("--resolution", type=int, default=None, help="default: each model's own")
    p.add_argument("--out", type=Path, default=None, help="default: a temporary directory")
    p.add_argument("--parity-samples", type=int, default=8)
    p.add_argument("--quantize", default="none", help="comma-separated modes, e.g. none,fp16,int8")
    p.add_argument("--fixtures", action="store_true",
                   help="export each model's trained Synthetic Shapes fixture (10 classes) with calibration images")
    p.add_argument("--calib-samples", type=int, default=128)
    args = p.parse_args(argv)
    from mobexport import logs

    logs.ensure_setup()  # third-party noise obeys the one logging setup, as in every command

    models = sorted({m for pattern in args.models.split(",") for m in list_models(pattern.strip())},
                    key=lambda m: (get_spec(m).family, get_spec(m).reference_params or 0))
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    out = args.out or Path(tempfile.mkdtemp(prefix="mobexport-export-table-"))
    console = Console(width=max(Console().width, 200))
    rows: list[dict] = []
    failures: list[str] = []
    modes = [q.strip() for q in args.quantize.split(",") if q.strip()]
    cases = [(m, t, q) for m in models for t in targets for q in modes]
    fixture = _fixture_options(models, out) if args.fixtures else {}
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True)) as progress:
        task = progress.add_task("export", total=len(cases))
        for model, target, mode in cases:
            progress.update(task, description=f"{model} -> {target} ({mode})")
            extra = fixture.get(model, {})
            config = ExportConfig(model=model, target=target, resolution=extra.get("resolution", args.resolution),
                                  out_dir=out / mode, parity_samples=args.parity_samples, quantize=mode,
                                  checkpoint=extra.get("checkpoint"), num_classes=extra.get("num_classes"),
                                  calib_dir=extra.get("calib_dir") if mode != "none" else None,
                                  calib_samples=args.calib_samples,
                                  target_options={"build_engine": False} if target == "tensorrt" else {},
                                  command=["mobexport", "--model", model, "--target", target, "--quantize", mode])
            started = time.perf_counter()
            try:
                artifact = export_model(config)
                rows.append(row_of(artifact.manifest, time.perf_counter() - started))
            except MobexportError as exc:
                failures.append(f"{model} -> {target} ({mode}): {exc.one_line()}")
            progress.advance(task)

    table = Table(title=f"exports ({len(rows)} ok, {len(failures)} failed) into {out}")
    for column in COLUMNS:
        table.add_column(column, no_wrap=column in ("model", "target"))
    for row in rows:
        table.add_row(*_cells(row))
    console.print(table)
    for line in failures:
        console.print(f"[red]failed[/] {line}")
    (out / "export_table.json").write_text(json.dumps({"rows": rows, "failures": failures}, indent=2) + "\n")
    (out / "export_table.md").write_text(markdown(rows))
    console.print(f"written: {out / 'export_table.json'}, {out / 'export_table.md'}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
