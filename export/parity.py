"""Numerical parity of an artifact against eager PyTorch.

Three metrics over a batch of inputs, for every output tensor of the model
(a tuple, list or dict output is flattened in ``torch.export``'s order), each
with a tolerance that can fail:

* ``max_abs_error``: ``max |y_ref - y|`` over all logits, held to its bound
  times ``max(1, max |y_ref|)``: absolute for logits up to 1, relative beyond
  (fp32 rounding grows with the logits' scale: a random-init ResNet-34's
  logits reach ~10 and move by ~1e-4 in a correct export);
* ``cosine``: the smallest per-sample cosine similarity of the logit vectors;
* ``top1_agreement``: the fraction of samples whose argmax agrees, only for
  outputs that look like class logits (2-D, batch x classes); ``None`` when
  no output does (a feature map, boxes), and the manifest says so.

fp16 artifacts get looser, fp16-appropriate tolerances (stated in the
manifest); ``--tolerance`` overrides the max-abs bound.

Inputs are standard-normal images unless the caller passes its own: an int8
artifact calibrated on real images is judged on images of that distribution
(activation ranges outside the calibrated ones clip by design), and the
report names which inputs it used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from mobexport.errors import ParityError
from mobexport.shapes import Resolution


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
TOP1_RULE = "top-1 agreement is measured on outputs shaped like class logits (2-D: batch x classes) only"


@dataclass
class OutputParity:
    """Parity of one output tensor (``name`` is its position in the flattened output structure)."""

    name: str
    shape: list[int]
    max_abs_error: float
    cosine: float
    top1_agreement: float | None  # None: not class logits
    passed: bool

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ParityReport:
    resolution: int
    samples: int
    max_abs_error: float
    mean_abs_error: float
    relative_max_error: float
    cosine: float
    top1_agreement: float | None
    tolerance: Tolerance
    passed: bool
    inputs: str = RANDOM_INPUTS
    size: str | None = None  # "HxW" when the input is not square
    outputs: list[OutputParity] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tolerance"] = self.tolerance.to_dict()
        d["outputs"] = [o.to_dict() for o in self.outputs]
        if len(self.outputs) > 1 or self.top1_agreement is None:
            d["top1_note"] = TOP1_RULE
        return d

    def describe(self) -> str:
        top1 = "" if self.top1_agreement is None else f", top-1 {self.top1_agreement:.0%}"
        several = f" ({len(self.outputs)} outputs; worst: {self.worst_output()})" if len(self.outputs) > 1 else ""
        return (f"@{self.size or self.resolution}: max|err| {self.max_abs_error:.2e}, cos {self.cosine:.6f}"
                f"{top1} over {self.samples}{several}"
                + ("" if self.inputs == RANDOM_INPUTS else f" ({self.inputs})"))

    def worst_output(self) -> str:
        failed = [o for o in self.outputs if not o.passed]
        worst = failed[0] if failed else min(self.outputs, key=lambda o: o.cosine)
        return f"output {worst.name} {tuple(worst.shape)}"


def looks_like_logits(shape: tuple[int, ...]) -> bool:
    """Class logits are 2-D, batch x classes (more than one class)."""
    return len(shape) == 2 and shape[1] > 1


def _as_list(outputs) -> list[np.ndarray]:
    if isinstance(outputs, (list, tuple)):
        return [np.asarray(o) for o in outputs]
    return [np.asarray(outputs)]


def compare(reference, candidate, resolution, tolerance: Tolerance) -> ParityReport:
    """Parity metrics of ``candidate`` against ``reference``: one array or a list of arrays (one per output).

    Each output is held to the tolerance on its own scale; the report's
    numbers are the worst over outputs, and ``outputs`` has each one's.
    """
    refs, gots = _as_list(reference), _as_list(candidate)
    if len(refs) != len(gots):
        raise ParityError(f"the artifact returns {len(gots)} output(s), PyTorch {len(refs)}")
    size = Resolution.of(resolution)
    per_output, diffs, scales = [], [], []
    for index, (ref_raw, got_raw) in enumerate(zip(refs, gots)):
        if ref_raw.shape != got_raw.shape and ref_raw.size != got_raw.size:
            raise ParityError(f"artifact output {index} has shape {got_raw.shape}, PyTorch's {ref_raw.shape}")
        ref = np.asarray(ref_raw, dtype=np.float64).reshape(len(ref_raw), -1)
        got = np.asarray(got_raw, dtype=np.float64).reshape(len(ref_raw), -1)
        diff = np.abs(ref - got)
        norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1)
        cosines = np.sum(ref * got, axis=1) / np.maximum(norms, 1e-30)
        # Two all-zero vectors (a ReLU'd map on noise) agree exactly: their cosine is 1, not 0.
        cosines = np.where((np.linalg.norm(ref, axis=1) == 0) & (np.linalg.norm(got, axis=1) == 0), 1.0, cosines)
        scale = max(float(np.abs(ref).max()) if ref.size else 0.0, 1e-12)
        finite = bool(np.isfinite(got).all())
        max_abs = float(diff.max()) if finite and diff.size else (0.0 if finite else float("inf"))
        top1 = float(np.mean(ref.argmax(1) == got.argmax(1))) if looks_like_logits(ref_raw.shape) else None
        cosine = float(cosines.min()) if finite else 0.0
        passed = (finite and max_abs <= tolerance.max_abs_error * max(1.0, scale) and cosine >= tolerance.min_cosine
                  and (top1 is None or top1 >= tolerance.min_top1_agreement))
        per_output.append(OutputParity(str(index), list(ref_raw.shape), max_abs, cosine, top1, passed))
        diffs.append(diff if finite else np.array([np.inf]))
        scales.append(scale)
    every = np.concatenate([d.ravel() for d in diffs])
    max_abs = max(o.max_abs_error for o in per_output)
    top1s = [o.top1_agreement for o in per_output if o.top1_agreement is not None]
    return ParityReport(
        resolution=size.height,
        samples=len(refs[0]),
        max_abs_error=max_abs,
        mean_abs_error=float(every.mean()) if every.size else 0.0,
        relative_max_error=max(o.max_abs_error / s for o, s in zip(per_output, scales)),
        cosine=min(o.cosine for o in per_output),
        top1_agreement=min(top1s) if top1s else None,
        tolerance=tolerance,
        passed=all(o.passed for o in per_output),
        size=None if size.square else str(size),
        outputs=per_output,
    )


def measure(
    reference_fn: Callable[[np.ndarray], object],
    candidate_fn: Callable[[np.ndarray], object],
    resolution: "int | Resolution",
    tolerance: Tolerance,
    samples: int = 8,
    seed: int = 0,
    inputs: np.ndarray | None = None,
    inputs_source: str = RANDOM_INPUTS,
) -> ParityReport:
    """Run both functions on the same images, one at a time.

    Each function returns one array or a list of arrays (one per output, in
    the flattened order of the model's output structure). ``inputs``
    ([N, 3, H, W]) replaces the ``samples`` random images; its
    ``inputs_source`` goes into the report.
    """
    if inputs is None:
        inputs = random_inputs(resolution, samples, seed)
        inputs_source = RANDOM_INPUTS
    batches = [np.ascontiguousarray(x[None], dtype=np.float32) for x in inputs]
    ref_runs = [_as_list(reference_fn(x)) for x in batches]
    got_runs = [_as_list(candidate_fn(x)) for x in batches]
    ref = [np.concatenate([run[i] for run in ref_runs]) for i in range(len(ref_runs[0]))]
    got = [np.concatenate([run[i] for run in got_runs]) for i in range(len(got_runs[0]))]
    report = compare(ref, got, resolution, tolerance)
    report.inputs = inputs_source
    return report


def random_inputs(resolution: "int | Resolution", samples: int, seed: int = 0) -> np.ndarray:
    """The standard-normal images ``measure`` uses by default ([samples, 3, H, W])."""
    size = Resolution.of(resolution)
    rng = np.random.default_rng(seed + size.height + (0 if size.square else 7919 * size.width))
    return rng.standard_normal((samples, 3, size.height, size.width)).astype(np.float32)


def require(reports: list[ParityReport], what: str,
            explain: Callable[[ParityReport], str | None] | None = None) -> None:
    """Raise :class:`ParityError` naming the first failing resolution.

    ``explain`` (a target's layer-wise diagnosis) may add where the artifact departs.
    """
    for r in reports:
        if not r.passed:
            t = r.tolerance
            where = explain(r) if explain is not None else None
            reference_max = reference_scale(r)
            if reference_max is not None and reference_max < VANISHING_OUTPUT:
                where = (f"PyTorch's own outputs are ~0 (max|y| {reference_max:.1e}) on these weights: "
                         f"nothing for the artifact to match") + (f"; {where}" if where else "")
                hint = "export trained weights (--checkpoint); random-init weights can make a model's outputs vanish"
            else:
                hint = "pass --tolerance to loosen the bound, or --passes none to rule out a graph rewrite"
            raise ParityError(
                f"{what} differs from PyTorch {r.describe()} "
                f"(tolerance {t.name}: max|err| <= {t.max_abs_error:g} x max(1, max|output|), cos >= {t.min_cosine}, "
                f"top-1 >= {t.min_top1_agreement:.0%} on logits)" + (f"; {where}" if where else ""),
                hint,
            )


# Below this, a reference output is numerically nothing: an int8 artifact rounds it to 0 and its cosine is 0.
# (A random-init MobileNetV3-L gives logits of ~1e-9: its activations shrink block by block.)
VANISHING_OUTPUT = 1e-6


def reference_scale(report: ParityReport) -> float | None:
    """``max |y_ref|`` from the report's error and relative error; None when they cannot say.

    Exact for a model with one output. With several, the two maxima may come from different outputs,
    so it is only an estimate: enough to tell ~1e-9 logits from ordinary ones.
    """
    if report.relative_max_error <= 0 or not np.isfinite(report.max_abs_error):
        return None
    return report.max_abs_error / report.relative_max_error
