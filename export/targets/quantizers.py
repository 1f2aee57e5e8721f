"""What a target declares about quantization: one :class:`Quantizer` per ``--quantize`` mode.

A quantizer says at which stage it runs and how, in words that go into the
manifest (``how``) next to the code that does it:

* ``program``: on the traced torch program, before the target lowers it
  (ExecuTorch's PT2E flow);
* ``artifact``: on the file ``lower`` wrote, before the target's ``finish``
  (ONNX Runtime's tools on an ONNX file; TensorRT builds its engine in
  ``finish``, from the quantized ONNX);
* ``options``: nothing to rewrite, the mode is a compute precision the target
  honours itself (``implies`` sets it, e.g. TensorRT's FP16 builder flag).

``run`` takes a :class:`QuantizeJob` and returns a :class:`Quantized`; it
imports its tools when called, so the tables load without torch (the
command line reads them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

PROGRAM = "program"
ARTIFACT = "artifact"
OPTIONS = "options"


@dataclass(frozen=True)
class Quantizer:
    mode: str
    stage: str
    how: str
    calibrated: bool = False  # needs calibration images (activation ranges)
    run: Callable[["QuantizeJob"], "Quantized"] | None = None  # the program and artifact stages
    implies: dict = field(default_factory=dict)  # target options this mode sets (fp16 -> precision fp16)


@dataclass
class QuantizeJob:
    """Everything a quantizer may read: the mode, the target's options, the calibration set, the programs."""

    mode: str
    options: Any                     # the target's TargetOptions
    calibration: Any                 # CalibrationSet, or None where the mode needs none
    synthetic_calibration: Callable[[], Any]  # a small synthetic set, for modes that can use one
    float_program: Any               # the traced (float) program
    lowered: Any = None              # the Lowered of the artifact stage


@dataclass
class Quantized:
    """What a quantizer produced: the new program or artifact, and facts for the manifest's ``quantization``."""

    traced: Any = None               # program stage
    lowered: Any = None              # artifact stage
    facts: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def by_mode(*quantizers: Quantizer) -> dict[str, Quantizer]:
    return {q.mode: q for q in quantizers}
