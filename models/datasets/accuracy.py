"""Held-out accuracy of a model in any form, and how far two forms disagree.

Quantization is judged on what it does to a trained model's answers, so every
form of a model (eager PyTorch, an ONNX session, an int8 program) is reduced to
one shape: a callable ``f(x) -> logits`` taking a float32 ``[N, 3, H, W]``
numpy batch already normalised with the model's mean/std (what an exported
artifact takes). This module feeds such callables the Synthetic Shapes
held-out split and measures:

* ``top1``: the fraction of held-out images classified correctly;
* ``top1_agreement``: the fraction where two callables pick the same class;
* ``sqnr_db``: the logits' signal-to-quantization-noise ratio,
  ``10 log10(sum(ref^2) / sum((ref - cand)^2))`` in dB (infinite when equal).
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from mobexport.errors import MobexportError

from .synthetic_shapes import generate

Logits = Callable[[np.ndarray], np.ndarray]

DEFAULT_HELDOUT_SAMPLES = 1000
DEFAULT_BATCH = 64


class AccuracyError(MobexportError):
    """A model callable gave logits of the wrong shape, or the inputs are unusable."""


@dataclass(frozen=True)
class Comparison:
    """A candidate's answers against a reference's on the same held-out images."""

    samples: int
    reference_top1: float
    candidate_top1: float
    top1_agreement: float
    sqnr_db: float

    def to_dict(self) -> dict:
        return asdict(self)


def normalize(images: np.ndarray, mean, std) -> np.ndarray:
    """uint8 ``[N, H, W, 3]`` images -> float32 ``[N, 3, H, W]``, ``(x/255 - mean) / std``."""
    x = images.astype(np.float32).transpose(0, 3, 1, 2) / np.float32(255.0)
    mean = np.asarray(mean, dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(std, dtype=np.float32).reshape(1, 3, 1, 1)
    return np.ascontiguousarray((x - mean) / std)


@functools.lru_cache(maxsize=8)
def _heldout(resolution: int, samples: int, seed: int, mean: tuple, std: tuple) -> tuple[np.ndarray, np.ndarray]:
    data = generate(samples, resolution, seed=seed, split="heldout")
    inputs = normalize(data.images, mean, std)
    inputs.flags.writeable = False
    data.labels.flags.writeable = False
    return inputs, data.labels


def heldout_inputs(model_name: str, resolution: int, samples: int = DEFAULT_HELDOUT_SAMPLES,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The held-out split, preprocessed for ``model_name``: (float32 ``[N,3,H,W]``, int64 ``[N]``).

    Read-only and cached in memory: generating it takes seconds.
    """
    from mobexport.models import get_spec

    spec = get_spec(model_name)
    return _heldout(int(resolution), int(samples), int(seed), tuple(spec.mean), tuple(spec.std))


def predict(f: Logits, inputs: np.ndarray, batch_size: int = DEFAULT_BATCH) -> np.ndarray:
    """Logits ``[N, classes]`` of ``f`` over ``inputs``, fed in batches of ``batch_size``."""
    if batch_size < 1:
        raise AccuracyError(f"batch size {batch_size} is not positive", "use 1 or more")
    outputs = []
    for start in range(0, len(inputs), batch_size):
        batch = inputs[start:start + batch_size]
        logits = np.asarray(f(batch), dtype=np.float32)
        if logits.ndim > 2 and len(logits) == len(batch):  # e.g. [N, classes, 1, 1] from a conv head
            logits = logits.reshape(len(batch), -1)
        if logits.ndim != 2 or len(logits) != len(batch):
            raise AccuracyError(f"model returned logits of shape {np.shape(logits)} for a batch of {len(batch)}",
                                "the callable must map [N, 3, H, W] to [N, classes]")
        outputs.append(logits)
    if not outputs:
        raise AccuracyError("no inputs to evaluate", "ask for at least one sample")
    return np.concatenate(outputs)


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose argmax is the label."""
    return float(np.mean(np.argmax(logits, axis=1) == np.asarray(labels)))


def top1_agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Fraction of rows where both logits pick the same class."""
    _same_shape(reference, candidate)
    return float(np.mean(np.argmax(reference, axis=1) == np.argmax(candidate, axis=1)))


def sqnr_db(reference: np.ndarray, candidate: np.ndarray) -> float:
    """``10 log10(signal power / error power)`` of ``candidate`` against ``reference``, in dB."""
    _same_shape(reference, candidate)
    ref = np.asarray(reference, dtype=np.float64)
    noise = float(np.sum((ref - np.asarray(candidate, dtype=np.float64)) ** 2))
    signal = float(np.sum(ref**2))
    if noise == 0.0:
        return float("inf")
    if signal == 0.0:
        return float("-inf")
    return float(10.0 * np.log10(signal / noise))


def heldout_top1(f: Logits, model_name: str, resolution: int, samples: int = DEFAULT_HELDOUT_SAMPLES,
                 seed: int = 0, batch_size: int = DEFAULT_BATCH) -> float:
    """Top-1 of ``f`` on the held-out split, preprocessed for ``model_name``."""
    inputs, labels = heldout_inputs(model_name, resolution, samples, seed)
    return top1(predict(f, inputs, batch_size), labels)


def compare_on_heldout(reference: Logits, candidate: Logits, model_name: str, resolution: int,
                       samples: int = DEFAULT_HELDOUT_SAMPLES, seed: int = 0,
                       batch_size: int = DEFAULT_BATCH) -> Comparison:
    """Both callables on the same held-out images: their top-1, agreement and logits SQNR."""
    inputs, labels = heldout_inputs(model_name, resolution, samples, seed)
    ref = predict(reference, inputs, batch_size)
    cand = predict(candidate, inputs, batch_size)
    return Comparison(samples=len(labels), reference_top1=top1(ref, labels), candidate_top1=top1(cand, labels),
                      top1_agreement=top1_agreement(ref, cand), sqnr_db=sqnr_db(ref, cand))


def torch_logits(model) -> Logits:
    """Wrap an eval-mode ``nn.Module`` as a numpy-in, numpy-out callable."""
    import torch

    def f(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(np.array(x, dtype=np.float32))).float().numpy()  # a copy: x may be read-only

    return f


def _same_shape(a: np.ndarray, b: np.ndarray) -> None:
    if np.shape(a) != np.shape(b):
        raise AccuracyError(f"logits of shapes {np.shape(a)} and {np.shape(b)} cannot be compared",
                            "evaluate both on the same inputs")
