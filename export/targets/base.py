"""The export target interface.

A target turns a traced program into a deployable file. Its package under
``export/targets/<id>/`` holds the target object, its typed options
(``options.py``), its quantizers per mode (``quantizers.py``) and its
``prepare`` hook for fused ops. ``lower`` is stateless: it returns a
:class:`Lowered` with everything downstream needs (the artifact kind the
runtime registry opens, whether it runs here, how to explain a parity
failure). Its runtime dependency is optional: ``available()`` says whether it
is importable and ``require()`` turns "not installed" into a one-line error
naming the extra.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from mobexport.config import ExportConfig
from mobexport.devices.runtimes import open_runner
from mobexport.devices.runtimes.runner import Runner
from mobexport.errors import MissingDependencyError
from mobexport.export.trace import TracedProgram

from .options import TargetOptions
from .quantizers import Quantizer


def runs_anywhere() -> tuple[bool, str]:
    return True, ""


@dataclass
class Lowered:
    """What ``lower`` (and ``finish``) produced: the file, its kind, and what downstream needs to use it."""

    path: Path
    # The artifact kind (a key of the runtime registry, ``devices/runtimes``), recorded in the manifest.
    kind: str
    details: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # Set when the target had to lower another program than it was given
    # (e.g. a static one after dynamic shapes failed): what the artifact accepts.
    traced: TracedProgram | None = None
    # Whether this host can execute the artifact (for parity), and why not; asked after quantization.
    runnable: Callable[[], tuple[bool, str]] = runs_anywhere
    # A runner for parity on this host; None: the runtime registry opens one for ``kind``.
    parity_runner: Callable[[], Runner] | None = None
    # The first cause of a failing parity report, where the target can tell.
    explain: Callable[[object], str | None] | None = None

    def can_run_here(self) -> tuple[bool, str]:
        return self.runnable()

    def open_for_parity(self) -> Runner:
        if self.parity_runner is not None:
            return self.parity_runner()
        return open_runner(self.path, manifest=None, device="cpu", kind=self.kind)


class Target(ABC):
    """One export format: how a program becomes its artifact. Holds no state between calls."""

    name: str
    extra: str
    file_name: str
    # (package to import, distribution the extra installs) pairs it needs.
    requires: tuple[tuple[str, str], ...] = ()
    default_dynamic: bool = False
    # Numerics of the artifact, which picks the parity tolerance (see parity.TOLERANCES).
    precision: str = "fp32"
    # The target's options dataclass and its quantizers by mode (from its own package).
    options_class: type[TargetOptions] = TargetOptions
    quantizers: dict[str, Quantizer] = {}
    # Default passes this target's runtime runs measurably slower after; ``--passes`` can still name them.
    slower_passes: tuple[str, ...] = ()

    def options(self, config: ExportConfig) -> TargetOptions:
        """This target's typed options from ``config.target_options``."""
        return self.options_class.from_dict(config.target_options)

    def missing(self) -> tuple[str, str] | None:
        """The first required (module, distribution) not importable, if any."""
        for module, distribution in self.requires:
            if importlib.util.find_spec(module) is None:
                return module, distribution
        return None

    def available(self) -> bool:
        return self.missing() is None

    def require(self) -> None:
        gap = self.missing()
        if gap is not None:
            raise MissingDependencyError(gap[1], self.extra, f"--target {self.name}")

    def check_config(self, config: ExportConfig) -> None:
        """Refuse target options this target cannot honour, before any work is done."""

    def precision_for(self, config: ExportConfig) -> str:
        """The artifact's numerics for this config ("fp32", "fp16", ...)."""
        return self.precision

    def prepare(self, traced: TracedProgram, config: ExportConfig) -> TracedProgram:
        """``traced`` with its fused ``mobexport::`` ops in the form this target lowers (kernels/lowering.py)."""
        return traced

    @abstractmethod
    def lower(self, traced: TracedProgram, config: ExportConfig, out_dir: Path) -> Lowered:
        """Write the artifact into ``out_dir``; everything downstream needs is in the returned :class:`Lowered`."""

    def finish(self, lowered: Lowered, config: ExportConfig, out_dir: Path) -> Lowered:
        """Turn the (possibly quantized) file ``lower`` wrote into the final artifact; most targets have nothing to do."""
        return lowered

    def load(self, path: Path, manifest: dict | None = None, device: str = "cpu") -> Runner:
        """A runner for the artifact at ``path``: the runtime registry's, by the artifact's kind."""
        return open_runner(path, manifest=manifest, device=device)

    def can_run_here(self) -> tuple[bool, str]:
        """Whether this host can execute this target's artifacts at all (for ``mobexport list``); reason if not."""
        return True, ""

    def status_here(self) -> tuple[str, str]:
        """(state, what exactly works on this host) for ``mobexport list``: "ready", "partial" or "missing"."""
        gap = self.missing()
        if gap is not None:
            return "missing", f'not installed: pip install "mobexport[{self.extra}]" (needs {gap[1]})'
        runnable, why_not = self.can_run_here()
        if not runnable:
            return "partial", f"exports here; parity is not run here ({why_not})"
        return "ready", "exports and runs here"
