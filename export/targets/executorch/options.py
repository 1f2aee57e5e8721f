"""ExecuTorch target options."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..options import TargetOptions, option

BACKENDS = ("xnnpack", "portable")


@dataclass(frozen=True)
class ExecuTorchOptions(TargetOptions):
    target: ClassVar[str] = "executorch"

    backend: str = option("xnnpack", "--backend", choices=BACKENDS,
                          help="delegate to XNNPACK (default) or portable kernels only")
