"""LiteRT target options: none yet (one static input, the XNNPACK delegate)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..options import TargetOptions


@dataclass(frozen=True)
class LiteRTOptions(TargetOptions):
    target: ClassVar[str] = "litert"
