"""What mobexport knows about a model variant before building it.

A :class:`ModelSpec` is the single source of truth for a variant's family,
the resolutions it accepts, its preprocessing and its reference numbers from
``shared/spec/models.md`` (the check table the zoo is tested against).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mobexport.errors import ResolutionError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ResolutionRange:
    """Square input sizes a model accepts: ``min..max`` in steps of ``stride``."""

    min: int = 96
    max: int = 1024
    stride: int = 32

    def __contains__(self, size: int) -> bool:
        return self.min <= size <= self.max and size % self.stride == 0

    def values(self) -> list[int]:
        return list(range(self.min, self.max + 1, self.stride))

    def __str__(self) -> str:
        return f"{self.min}..{self.max} step {self.stride}"


@dataclass(frozen=True)
class ModelSpec:
    """Facts about one variant. Reference numbers come from the check table.

    ``reference_params`` is the parameter count of the reference code (exact
    where the table gives one); ``reference_macs`` counts conv + linear +
    matmul multiply-accumulates at ``default_resolution``, batch 1.
    """

    name: str
    family: str
    default_resolution: int
    reference_params: float
    reference_macs: float
    checkpoint_format: str
    resolutions: ResolutionRange = field(default_factory=ResolutionRange)
    num_classes: int = 1000
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    reference_top1: float | None = None
    description: str = ""

    def check_resolution(self, size: int) -> int:
        """Return ``size`` if this model accepts it, else raise a one-line error."""
        if size in self.resolutions:
            return size
        r = self.resolutions
        if not r.min <= size <= r.max:
            problem = f"resolution {size} is outside {self.name}'s range {r.min}..{r.max}"
        else:
            problem = f"resolution {size} is not a multiple of {r.stride}, which {self.name} needs"
        near = min(r.values(), key=lambda v: abs(v - size))
        raise ResolutionError(problem, f"use e.g. --resolution {near}")
