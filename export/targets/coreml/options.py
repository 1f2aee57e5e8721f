"""Core ML target options."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ..options import TargetOptions, option

PRECISIONS = ("fp16", "fp32")
DEFAULT_PRECISION = "fp16"


@dataclass(frozen=True)
class CoreMLOptions(TargetOptions):
    target: ClassVar[str] = "coreml"

    precision: str | None = option(None, "--precision", choices=PRECISIONS, shown_default=DEFAULT_PRECISION,
                                   help="compute precision (default: {default})")
    deployment_target: str = option("iOS16", "--deployment-target",
                                    help="minimum deployment target, e.g. iOS16, iOS17, macOS13 (default: {default})")
    image_input: bool = option(False, "--image-input", kind="switch",
                               help="take an image input with the model's normalization baked in")
    class_labels: Path | None = option(None, "--class-labels", kind="file",
                                       help="text file of class labels, one per line")

    @property
    def compute_precision(self) -> str:
        return self.precision or DEFAULT_PRECISION
