"""The runner shape every backend implements (after Polygraphy's runners).

A runner is a context manager around one loaded artifact: ``infer`` for
outputs, ``time`` for latency samples, ``memory`` for what it holds.
"""

from __future__ import annotations

import time as _time
from abc import ABC, abstractmethod

import numpy as np


class Runner(ABC):
    """One loaded artifact, ready to run. Feeds and outputs are numpy arrays."""

    name = "runner"

    def __enter__(self) -> "Runner":
        self.activate()
        return self

    def __exit__(self, *exc) -> None:
        self.deactivate()

    def activate(self) -> None:
        """Load the artifact; the expensive part, timed as init time by callers."""

    def deactivate(self) -> None:
        """Release the runtime's resources."""

    @abstractmethod
    def infer(self, x: np.ndarray) -> np.ndarray:
        """Logits for one input batch ``x`` of shape [N, 3, H, W] (float32)."""

    def time(self, x: np.ndarray, warmup: int, iters: int) -> list[float]:
        """Wall-clock seconds of ``iters`` calls after ``warmup`` untimed ones."""
        for _ in range(warmup):
            self.infer(x)
        samples = []
        for _ in range(iters):
            start = _time.perf_counter()
            self.infer(x)
            samples.append(_time.perf_counter() - start)
        return samples

    def memory(self) -> dict:
        """What the runtime reports about its memory, if anything."""
        return {}
