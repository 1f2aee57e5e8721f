"""The export target interface and the target registry.

A target turns a traced program into a deployable file (``lower``) and loads
that file into a :class:`~mobexport.devices.runner.Runner` (``load``). Its
runtime dependency is optional: ``available()`` says whether it is importable
and ``require()`` turns "not installed" into a one-line error naming the extra.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from mobexport.config import ExportConfig
from mobexport.devices.runner import Runner
from mobexport.errors import MissingDependencyError, UnknownTargetError

from .trace import TracedProgram


@dataclass
class Lowered:
    """What ``lower`` produced: the main file plus target-specific facts."""

    path: Path
    details: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # Set when the target had to lower another program than it was given
    # (e.g. a static one after dynamic shapes failed): what the artifact accepts.
    traced: TracedProgram | None = None


class Target(ABC):
    """One export format with its runtime."""

    name: str
    extra: str
    file_name: str
    # (package to import, distribution the extra installs) pairs it needs.
    requires: tuple[tuple[str, str], ...] = ()
    default_dynamic: bool = False
    # Numerics of the artifact, which picks the parity tolerance (see parity.TOLERANCES).
    precision: str = "fp32"

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

    @abstractmethod
    def lower(self, traced: TracedProgram, config: ExportConfig, out_dir: Path) -> Lowered:
        """Write the artifact into ``out_dir`` and return where it is."""

    @abstractmethod
    def load(self, path: Path, manifest: dict | None = None, device: str = "cpu") -> Runner:
        """A runner for the artifact at ``path``."""

    def can_run_here(self) -> tuple[bool, str]:
        """Whether this host can execute the artifact (for parity); reason if not."""
        return True, ""

    def can_run_here_for(self, config: ExportConfig) -> tuple[bool, str]:
        """:meth:`can_run_here` for one export's options (a delegate this host's runtime lacks, say)."""
        return self.can_run_here()

    def status_here(self) -> tuple[str, str]:
        """(state, what exactly works on this host) for ``mobexport list``: "ready", "partial" or "missing"."""
        gap = self.missing()
        if gap is not None:
            return "missing", f'not installed: pip install "mobexport[{self.extra}]" (needs {gap[1]})'
        runnable, why_not = self.can_run_here()
        if not runnable:
            return "partial", f"exports here; parity is not run here ({why_not})"
        return "ready", "exports and runs here"


_TARGET_MODULES = {
    "onnx": ("onnx_target", "OnnxTarget"),
    "executorch": ("executorch_target", "ExecuTorchTarget"),
    "coreml": ("coreml_target", "CoreMLTarget"),
    "tensorrt": ("tensorrt_target", "TensorRTTarget"),
    "litert": ("litert_target", "LiteRTTarget"),
}


def target_names() -> list[str]:
    """Targets whose implementation ships with this version."""
    here = Path(__file__).parent
    return [name for name, (module, _) in _TARGET_MODULES.items() if (here / f"{module}.py").exists()]


def get_target(name: str) -> Target:
    if name not in target_names():
        raise UnknownTargetError(f"unknown target '{name}'", f"choose one of: {', '.join(target_names())}")
    module_name, class_name = _TARGET_MODULES[name]
    module = importlib.import_module(f"{__package__}.{module_name}")
    return getattr(module, class_name)()
