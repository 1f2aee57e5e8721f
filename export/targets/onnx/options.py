"""ONNX target options."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..options import TargetOptions, option


@dataclass(frozen=True)
class OnnxOptions(TargetOptions):
    target: ClassVar[str] = "onnx"

    int8_activations: str = option(
        "int8", "--int8-activations", choices=("int8", "uint8"),
        help="activation type with --quantize int8; uint8 (U8S8) is ONNX Runtime's fast form on x86 CPUs without VNNI "
             "(default: {default}, S8S8)",
        elsewhere=("--int8-activations uint8 applies to --target onnx --quantize int8 only",
                   "drop --int8-activations (TensorRT needs symmetric int8; other targets pick their own)"))
