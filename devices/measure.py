"""How many warmup and timed runs a case gets: adapted to a minimum measuring time.

A fixed iteration count is wrong at both ends of a resolution sweep: 50 runs
of a 2 ms model measure 0.1 s of noise, 50 runs of a 400 ms model waste 20 s.
The policy instead asks for *time*:

1. **Init** (model load + first inference) is timed once and kept apart.
2. **Warmup** runs until at least ``min_warmup`` runs *and* ``warmup_time_s``
   seconds of inference have passed (at most ``max_warmup`` runs): caches,
   allocator pools and thread pools settle.
3. **Measurement** runs until at least ``min_iters`` samples *and*
   ``min_time_s`` seconds of measured inference exist, stopping at
   ``max_iters``. Samples are taken in chunks sized from the warmup's median so
   that a runner's own ``time()`` (which may use device events) is honoured.

Durations are summed from the samples themselves, not read from a wall clock,
so the policy is deterministic given the samples (and testable without sleeping).
Devices that must fix counts up front (a phone runner binary) use
:meth:`MeasurePolicy.counts_for` with a probe run's per-iteration time.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Callable

TimeChunk = Callable[[int], list[float]]  # run n timed inferences -> n samples in seconds

CHUNK_TARGET_S = 0.5


@dataclass(frozen=True)
class MeasurePolicy:
    min_time_s: float = 2.0
    min_iters: int = 10
    max_iters: int = 1000
    warmup_time_s: float = 0.5
    min_warmup: int = 3
    max_warmup: int = 50

    def __post_init__(self):
        if self.min_time_s < 0 or self.warmup_time_s < 0:
            raise ValueError("measuring times must be >= 0")
        if not 1 <= self.min_iters <= self.max_iters:
            raise ValueError("need 1 <= min_iters <= max_iters")
        if not 0 <= self.min_warmup <= self.max_warmup:
            raise ValueError("need 0 <= min_warmup <= max_warmup")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "MeasurePolicy":
        return cls(**data)

    def counts_for(self, per_iter_s: float) -> tuple[int, int]:
        """(warmup, iters) that satisfy the policy for a known per-iteration time."""
        per_iter_s = max(per_iter_s, 1e-9)
        warmup = min(self.max_warmup, max(self.min_warmup, math.ceil(self.warmup_time_s / per_iter_s)))
        iters = min(self.max_iters, max(self.min_iters, math.ceil(self.min_time_s / per_iter_s)))
        return warmup, iters


@dataclass
class Timing:
    samples_s: list[float]
    warmup: int
    warmup_s: float

    @property
    def iters(self) -> int:
        return len(self.samples_s)


def time_adaptively(time_chunk: TimeChunk, policy: MeasurePolicy) -> Timing:
    """Warm up, then collect samples until the policy is satisfied."""
    warm: list[float] = []
    while len(warm) < policy.max_warmup and (len(warm) < policy.min_warmup or sum(warm) < policy.warmup_time_s):
        warm.extend(time_chunk(1))
    per_iter = statistics.median(warm[-policy.min_warmup:]) if warm else None

    samples: list[float] = []
    while len(samples) < policy.max_iters and (len(samples) < policy.min_iters or sum(samples) < policy.min_time_s):
        remaining_s = max(policy.min_time_s - sum(samples), 0.0)
        by_time = 1 if per_iter is None else math.ceil(min(remaining_s, CHUNK_TARGET_S) / max(per_iter, 1e-9))
        by_count = policy.min_iters - len(samples)
        chunk = max(1, min(max(by_time, by_count), policy.max_iters - len(samples)))
        new = time_chunk(chunk)
        samples.extend(new)
        per_iter = statistics.median(new)
    return Timing(samples_s=samples, warmup=len(warm), warmup_s=sum(warm))
