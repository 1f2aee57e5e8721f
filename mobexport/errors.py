"""User-facing errors.

Each kind of user mistake has its own exception type. The CLI turns any
:class:`MobexportError` into one line (problem + fix) and exit status 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations


class MobexportError(Exception):
    """A problem the user can fix. ``hint`` says how."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def __str__(self) -> str:
        return self.one_line()


class UnknownModelError(MobexportError):
    """The model name is not in the zoo."""


class UnknownTargetError(MobexportError):
    """The export target is not one mobexport knows."""


class ResolutionError(MobexportError):
    """The input resolution is outside what the model or artifact accepts."""


class CheckpointError(MobexportError):
    """The checkpoint is missing, unreadable, or does not fit the model."""


class MissingDependencyError(MobexportError):
    """An optional dependency (a target's runtime) is not installed."""

    def __init__(self, package: str, extra: str, purpose: str):
        super().__init__(
            f"{purpose} needs the Python package '{package}', which is not installed",
            f'install it with: pip install "mobexport[{extra}]"',
        )
        self.package = package
        self.extra = extra


class OutputDirError(MobexportError):
    """The output directory cannot be created or written."""


class UnknownPassError(MobexportError):
    """A graph pass name is not registered."""


class ParityError(MobexportError):
    """An exported artifact's outputs differ from PyTorch beyond the tolerance."""


class ExportError(MobexportError):
    """The model could not be traced or lowered for the target."""


class TargetOptionError(MobexportError):
    """A target option (--precision, --deployment-target, --class-labels, ...) is invalid for the target."""


class QuantizationError(MobexportError):
    """A quantization mode or its calibration input is not usable."""


class DeviceError(MobexportError):
    """A device is unknown, unreachable, or not fit for the artifact."""


class BenchmarkError(MobexportError):
    """A benchmark sweep, results file or baseline is malformed or unusable."""


class ResourceExhaustedError(ExportError):
    """Memory, disk space or a file-size limit ran out while mobexport worked."""
