"""User-facing errors.

Each kind of user mistake has its own exception type. The CLI turns any
:class:`MobexportError` into one line (problem + fix) and its ``exit_code``:
2 for bad input (the default), 3 for an export that ran and failed
(:class:`ExportFailedError`: parity, tracing, lowering, the runtime);
``--debug`` shows the traceback instead. ``EXIT_STATUSES`` is the table the
CLI's help and the README show.
"""

from __future__ import annotations


EXIT_OK = 0
EXIT_CHECK_FAILED = 1  # bench: some cases failed; regress: a regression was found
EXIT_USAGE = 2  # bad command line or input file: fix the input and run again
EXIT_EXPORT_FAILED = 3  # the export ran and failed: parity, tracing, lowering or the runtime
EXIT_INTERRUPTED = 130  # Ctrl-C: nothing half-written is left behind
EXIT_TERMINATED = 143  # SIGTERM (kill, a CI timeout), handled like Ctrl-C; SIGHUP gives 129 (128 + signal)

EXIT_STATUSES = {
    EXIT_OK: "success",
    EXIT_CHECK_FAILED: "bench: some cases failed; regress: a latency regression was found",
    EXIT_USAGE: "usage or input error (bad option, unknown model, unreadable file, missing dependency)",
    EXIT_EXPORT_FAILED: "the export ran and failed (parity, tracing, lowering, the target's runtime)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C); nothing half-written is left behind",
    EXIT_TERMINATED: "terminated (SIGTERM: kill, a CI timeout), handled like Ctrl-C",
}


class MobexportError(Exception):
    """A problem the user can fix. ``hint`` says how."""

    exit_code = EXIT_USAGE

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


class ExportFailedError(MobexportError):
    """The input was fine but the export itself failed: a distinct exit status, so scripts can tell."""

    exit_code = EXIT_EXPORT_FAILED


class ParityError(ExportFailedError):
    """An exported artifact's outputs differ from PyTorch beyond the tolerance."""


class ExportError(ExportFailedError):
    """The model could not be traced or lowered for the target."""


class TargetOptionError(MobexportError):
    """A target option (--precision, --deployment-target, --class-labels, ...) is invalid for the target."""


class QuantizationError(MobexportError):
    """A quantization mode or its calibration input is not usable."""


class DeviceError(MobexportError):
    """A device is unknown, unreachable, or not fit for the artifact."""


class BenchmarkError(MobexportError):
    """A benchmark sweep, results file or baseline is malformed or unusable."""


class InvalidOptionError(MobexportError):
    """An option's value is out of range or names a path that is not there (checked before any work)."""


class ResourceExhaustedError(ExportError):
    """Memory, disk space or a file-size limit ran out while mobexport worked."""


def first_line(exc: BaseException, limit: int = 300, *, with_type: bool = False) -> str:
    """An exception's first line of text (its type name when it has none), for a one-line message.

    ``with_type`` prefixes the type name (``RuntimeError: ...``), for records
    that keep a failure whose type is not otherwise known (a failed case).
    """
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    line = text.splitlines()[0][:limit]
    return f"{type(exc).__name__}: {line}" if with_type else line
