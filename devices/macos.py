"""A Mac: Core ML prediction through coremltools, on chosen compute units.

``--device macos[:UNITS]`` with UNITS one of CPU_ONLY, CPU_AND_GPU, CPU_AND_NE
or ALL (default). Cases run in the per-case worker, which hands the compute
units to the Core ML target's ``load`` as its device. Prediction needs
macOS: elsewhere the device is unavailable and says so.
"""

from __future__ import annotations

import importlib.util
import platform
import subprocess
import sys

from mobexport.errors import DeviceError

from .device import Availability
from .local import SubprocessDevice, host_fingerprint
from .runtimes import COREML
from .runtimes.coreml import COMPUTE_UNITS


class MacDevice(SubprocessDevice):
    kinds = (COREML,)

    def __init__(self, compute_units: str = "ALL", **kwargs):
        units = compute_units.upper()
        if units not in COMPUTE_UNITS:
            raise DeviceError(f"unknown Core ML compute units '{compute_units}'",
                              f"use macos:{'|'.join(COMPUTE_UNITS)}")
        self.compute_units = units
        self.runtime_device = units
        super().__init__(**kwargs)

    @property
    def name(self) -> str:
        return f"macos:{self.compute_units}"

    def availability(self) -> Availability:
        if sys.platform != "darwin":
            return Availability(False, f"Core ML prediction needs macOS (this host runs {platform.system()})")
        if importlib.util.find_spec("coremltools") is None:
            return Availability(False, 'coremltools is not installed (pip install "mobexport[coreml]")')
        return Availability(True)

    def info(self) -> dict:
        info = {"name": self.name, **host_fingerprint(), "macos": platform.mac_ver()[0] or None}
        if sys.platform == "darwin":
            try:
                info["model"] = subprocess.run(["sysctl", "-n", "hw.model"], capture_output=True, text=True,
                                               timeout=10).stdout.strip()
            except (OSError, subprocess.SubprocessError):
                pass
        return info
