"""Numerical parity of an artifact against eager PyTorch.

Three metrics over a batch of inputs, each with a tolerance that can fail:

* ``max_abs_error``: ``max |y_ref - y|`` over all logits, held to its bound
  times ``max(1, max |y_ref|)``: absolute for logits up to 1, relative beyond
  (fp32 rounding grows with the logits' scale: a random-init ResNet-34's
  logits reach ~10 and move by ~1e-4 in a correct export);
* ``cosine``: the smallest per-sample cosine similarity of the logit vectors;
* ``top1_agreement``: the fraction of samples whose argmax agrees.

fp16 artifacts get looser, fp16-appropriate tolerances (stated in the
manifest); ``--tolerance`` overrides the max-abs bound.

Inputs are standard-normal images unless the caller passes its own: an int8
artifact calibrated on real images is judged on images of that distribution
(activation ranges outside the calibrated ones clip by design), and the
report names which inputs it used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from mobexport.errors import ParityError


@dataclass(frozen=True)
class Tolerance:
    max_abs_error: float
    min_cosine: float
    min_top1_agreement: float
    name: str = "fp32"

    def to_dict(self) -> dict:
        return asdict(self)


FP32 = Tolerance(max_abs_error=1e-4, min_cosine=0.99999, min_top1_agreement=1.0, name="fp32")
# fp16 keeps ~3 significant digits; logits of magnitude ~10 move by ~1e-2.
FP16 = Tolerance(max_abs_error=5e-2, min_cosine=0.999, min_top1_agreement=0.875, name="fp16")
# int8 is judged by its accuracy report; parity only has to catch a broken artifact. The smallest
# per-sample cosine is an extreme value, and on few classes a correct int8 artifact dips: the trained
# 10-class Mobile-Former-26M fixture at 22 dB logits SQNR, with 100% top-1 agreement on 64 held-back
# images, has worst-of-8 cosines from 0.968 to 0.997 depending on the calibration details.
INT8 = Tolerance(max_abs_error=float("inf"), min_cosine=0.95, min_top1_agreement=0.75, name="int8")
TOLERANCES = {"fp32": FP32, "fp16": FP16, "int8": INT8}


RANDOM_INPUTS = "standard-normal noise"


@dataclass
class ParityReport:
    resolution: int
    samples: int
    max_abs_error: float
    mean_abs_error: float
    relative_max_error: float
    cosine: float
    top1_agreement: float
    tolerance: Tolerance
    passed: bool
    inputs: str = RANDOM_INPUTS

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tolerance"] = self.tolerance.to_dict()
        return d

    def describe(self) -> str:
        return (f"@{self.resolution}: max|err| {self.max_abs_error:.2e}, cos {self.cosine:.6f}, "
                f"top-1 {self.top1_agreement:.0%} over {self.samples}"
                + ("" if self.inputs == RANDOM_INPUTS else f" ({self.inputs})"))


def compare(reference: np.ndarray, candidate: np.ndarray, resolution: int, tolerance: Tolerance) -> ParityReport:
    """Parity metrics of ``candidate`` logits against ``reference`` ([N, classes])."""
    ref = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
    got = np.asarray(candidate, dtype=np.float64).reshape(len(candidate), -1)
    if ref.shape != got.shape:
        raise ParityError(f"artifact output shape {got.shape} differs from PyTorch's {ref.shape}")
    diff = np.abs(ref - got)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1)
    cosine = np.sum(ref * got, axis=1) / np.maximum(norms, 1e-30)
    scale = max(float(np.abs(ref).max()), 1e-12)
    finite = bool(np.isfinite(got).all())
    max_abs = float(diff.max()) if finite else float("inf")
    report = ParityReport(
        resolution=resolution,
        samples=len(ref),
        max_abs_error=max_abs,
        mean_abs_error=float(diff.mean()) if finite else float("inf"),
        relative_max_error=max_abs / scale,
        cosine=float(cosine.min()) if finite else 0.0,
        top1_agreement=float(np.mean(ref.argmax(1) == got.argmax(1))),
        tolerance=tolerance,
        passed=False,
    )
    report.passed = (
        finite
        and report.max_abs_error <= tolerance.max_abs_error * max(1.0, scale)
        and report.cosine >= tolerance.min_cosine
        and report.top1_agreement >= tolerance.min_top1_agreement
    )
    return report


def measure(
    reference_fn: Callable[[np.ndarray], np.ndarray],
    candidate_fn: Callable[[np.ndarray], np.ndarray],
    resolution: int,
    tolerance: Tolerance,
    samples: int = 8,
    seed: int = 0,
    inputs: np.ndarray | None = None,
    inputs_source: str = RANDOM_INPUTS,
) -> ParityReport:
    """Run both functions on the same images, one at a time.

    ``inputs`` ([N, 3, H, W]) replaces the ``samples`` random images; its
    ``inputs_source`` goes into the report.
    """
    if inputs is None:
        inputs = random_inputs(resolution, samples, seed)
        inputs_source = RANDOM_INPUTS
    batches = [np.ascontiguousarray(x[None], dtype=np.float32) for x in inputs]
    ref = np.concatenate([reference_fn(x) for x in batches])
    got = np.concatenate([candidate_fn(x) for x in batches])
    report = compare(ref, got, resolution, tolerance)
    report.inputs = inputs_source
    return report


def random_inputs(resolution: int, samples: int, seed: int = 0) -> np.ndarray:
    """The standard-normal images ``measure`` uses by default ([samples, 3, H, W])."""
    rng = np.random.default_rng(seed + resolution)
    return rng.standard_normal((samples, 3, resolution, resolution)).astype(np.float32)


def require(reports: list[ParityReport], what: str,
            explain: Callable[[ParityReport], str | None] | None = None) -> None:
    """Raise :class:`ParityError` naming the first failing resolution.

    ``explain`` (a target's layer-wise diagnosis) may add where the artifact departs.
    """
    for r in reports:
        if not r.passed:
            t = r.tolerance
            where = explain(r) if explain is not None else None
            raise ParityError(
                f"{what} differs from PyTorch {r.describe()} "
                f"(tolerance {t.name}: max|err| <= {t.max_abs_error:g} x max(1, max|logit|), cos >= {t.min_cosine}, "
                f"top-1 >= {t.min_top1_agreement:.0%})" + (f"; {where}" if where else ""),
                "pass --tolerance to loosen the bound, or --passes none to rule out a graph rewrite",
            )
