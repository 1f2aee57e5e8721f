"""The accuracy report of a quantized artifact: float vs quantized on the same images.

Which images:

* the checkpoint is a trained fixture (``mobexport train-fixture``; its meta
  says ``kind: mobexport-fixture``): the fixture's own held-out Synthetic
  Shapes split, with labels, so top-1 of float and quantized is reported;
* otherwise: calibration-like inputs, i.e. the ``--calib`` images held back
  from calibration (or, if the directory had no more, the calibration images
  themselves, flagged ``in_sample``); without labels only top-1 agreement and
  logits SQNR mean anything.

Float is the eager PyTorch model with the same weights; quantized is the
artifact through its runtime, one image at a time (programs take batch 1).
Metrics come from :mod:`mobexport.models.datasets.accuracy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .calibration import CalibrationSet

FLOAT_BATCH = 64


@dataclass
class EvalSet:
    inputs: np.ndarray
    labels: np.ndarray | None
    source: str
    in_sample: bool = False


def fixture_meta(checkpoint: Path | None) -> dict | None:
    """The fixture meta of ``checkpoint`` if it is a mobexport fixture, else None."""
    if checkpoint is None:
        return None
    from mobexport.models.datasets.fixture_checkpoint import FIXTURE_KIND, read_fixture_meta
    from mobexport.errors import CheckpointError

    try:
        meta = read_fixture_meta(checkpoint)
    except CheckpointError:
        return None
    return meta if meta.get("kind") == FIXTURE_KIND else None


def evaluation_set(model_name: str, resolution: int, checkpoint: Path | None,
                   calibration: CalibrationSet | None) -> EvalSet | None:
    meta = fixture_meta(checkpoint)
    if meta is not None:
        from mobexport.models.datasets.accuracy import heldout_inputs

        samples = int(meta.get("dataset", {}).get("heldout_samples", 1000))
        inputs, labels = heldout_inputs(model_name, resolution, samples, int(meta.get("seed", 0)))
        return EvalSet(inputs, labels, f"fixture held-out split (Synthetic Shapes, seed {meta.get('seed', 0)})")
    if calibration is None:
        return None
    if calibration.heldback is not None and len(calibration.heldback):
        return EvalSet(calibration.heldback, None, f"{calibration.source} inputs held back from calibration")
    return EvalSet(calibration.inputs, None, f"the {calibration.source} calibration inputs themselves", in_sample=True)


def measure(float_fn: Callable[[np.ndarray], np.ndarray], quantized_fn: Callable[[np.ndarray], np.ndarray],
            eval_set: EvalSet) -> dict:
    """Top-1 (when labelled), top-1 agreement and logits SQNR of quantized against float."""
    from mobexport.models.datasets.accuracy import predict, sqnr_db, top1, top1_agreement

    # Held-out arrays are read-only (shared, cached); runtimes get a writable copy of each batch.
    reference = predict(lambda x: float_fn(np.array(x)), eval_set.inputs, FLOAT_BATCH)
    candidate = predict(lambda x: quantized_fn(np.array(x)), eval_set.inputs, 1)
    report = {
        "evaluated_on": eval_set.source,
        "samples": int(len(eval_set.inputs)),
        "top1_agreement": round(top1_agreement(reference, candidate), 4),
        "logits_sqnr_db": round(sqnr_db(reference, candidate), 2),
    }
    if eval_set.labels is not None:
        report["float_top1"] = round(top1(reference, eval_set.labels), 4)
        report["quantized_top1"] = round(top1(candidate, eval_set.labels), 4)
        report["top1_drop_points"] = round(100 * (report["float_top1"] - report["quantized_top1"]), 2)
    if eval_set.in_sample:
        report["in_sample"] = True
    return report


def summary_rows(quantization: dict) -> list[tuple[str, str]]:
    """(label, text) rows for the export summary table; empty for an unquantized artifact."""
    mode = quantization.get("mode", "none")
    if mode == "none":
        return []
    rows = [("quantization", f"{mode}: {quantization.get('how', '')}")]
    scheme = quantization.get("scheme")
    if isinstance(scheme, dict) and scheme.get("activations"):
        rows.append(("activations", scheme["activations"]))
    calib = quantization.get("calibration")
    if calib:
        if calib["source"] == "synthetic":
            rows.append(("calibration", f"[yellow]synthetic[/] ({calib['samples']} noise inputs): pass --calib DIR"))
        else:
            skipped = calib.get("skipped_not_image", 0) + calib.get("skipped_unreadable", 0)
            rows.append(("calibration", f"{calib['samples']} images from {calib['directory']}"
                                        + (f" ({skipped} file(s) skipped)" if skipped else "")))
    floats = quantization.get("float_layers")
    if floats is not None:
        names = ", ".join(f"{f['scope'] or f['name']} ({f['op']})" for f in floats[:4])
        more = f" +{len(floats) - 4} more" if len(floats) > 4 else ""
        rows.append(("float layers", f"{len(floats)}" + (f": {names}{more}" if floats else " (all measured layers int8)")))
    weights = quantization.get("weights")
    if weights:
        rows.append(("weights", f"{_mb(weights['fp32_bytes'])} fp32 -> {_mb(weights['quantized_bytes'])} "
                                f"({weights['ratio']}x smaller)"))
    accuracy = quantization.get("accuracy")
    if accuracy and "top1_agreement" in accuracy:
        text = (f"agreement {accuracy['top1_agreement']:.1%}, logits SQNR {accuracy['logits_sqnr_db']:.1f} dB"
                f" over {accuracy['samples']} ({accuracy['evaluated_on']})")
        if "float_top1" in accuracy:
            text = (f"top-1 float {accuracy['float_top1']:.1%} -> quantized {accuracy['quantized_top1']:.1%}, "
                    + text)
        rows.append(("accuracy", text))
    elif accuracy:
        rows.append(("accuracy", f"not measured: {accuracy.get('not_measured', 'unknown reason')}"))
    return rows


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"
