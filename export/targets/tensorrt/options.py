"""TensorRT target options."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..options import TargetOptions, option

PRECISIONS = ("fp16", "fp32")
DEFAULT_PRECISION = "fp16"


@dataclass(frozen=True)
class TensorRTOptions(TargetOptions):
    target: ClassVar[str] = "tensorrt"

    precision: str | None = option(None, "--precision", choices=PRECISIONS, shown_default=DEFAULT_PRECISION,
                                   help="compute precision (default: {default})")
    build_engine: bool = option(True, "--build-engine", kind="yes_no",
                                help="'no' writes the TensorRT-ready ONNX and the trtexec command instead")
