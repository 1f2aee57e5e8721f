"""ExecuTorch target options."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..options import TargetOptions, option
from .backends import DELEGATES

BACKENDS = ("xnnpack", "portable", *DELEGATES)


@dataclass(frozen=True)
class ExecuTorchOptions(TargetOptions):
    target: ClassVar[str] = "executorch"

    backend: str = option("xnnpack", "--backend", choices=BACKENDS,
                          help="delegate to XNNPACK (default), Vulkan (Android GPU), Core ML (Apple), "
                               "or portable kernels only")
    etrecord: bool = option(False, "--etrecord", kind="switch",
                            help="write an ETRecord beside the .pte, so on-device ETDump profiles name graph nodes")
