"""The device interface: where an artifact is measured.

A :class:`Device` says whether it can be used here (:meth:`availability`, with
the reason when not), describes itself (:meth:`info`, a stable fingerprint
stored with every record) and measures one case (:meth:`measure`), given as a
:class:`CaseJob`, returning a :class:`Measurement`.

Two kinds of failure are kept apart: :class:`CaseFailed` is one case going
wrong (a crash, a runtime error) and a sweep records it and goes on; a
:class:`~mobexport.errors.DeviceError` (device gone, runner missing) ends the
sweep with a one-line message, keeping the cases already finished.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mobexport.errors import DeviceError

from .measure import MeasurePolicy
from .runtimes import EAGER, RUNTIMES, where_it_runs

__all__ = ["EAGER", "WHERE_IT_RUNS", "Availability", "CaseFailed", "CaseJob", "Device", "DeviceDisconnectedError", "Measurement"]


class CaseFailed(Exception):
    """One case could not be measured; the sweep records why and continues."""


class DeviceDisconnectedError(DeviceError):
    """The device went away in the middle of a sweep."""


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


@dataclass
class CaseJob:
    """One case to measure: an artifact (or an eager model) at one input shape."""

    kind: str                      # the artifact's target, or EAGER (devices/runtimes opens it by artifact kind)
    model: str
    resolution: int
    batch: int = 1
    threads: int = 0               # 0 = the runtime's default
    artifact_path: Path | None = None
    manifest: dict | None = None
    policy: MeasurePolicy = field(default_factory=MeasurePolicy)
    label: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["artifact_path"] = str(self.artifact_path) if self.artifact_path else None
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "CaseJob":
        data = dict(data)
        data["policy"] = MeasurePolicy.from_dict(data["policy"])
        data["artifact_path"] = Path(data["artifact_path"]) if data.get("artifact_path") else None
        return cls(**data)


@dataclass
class Measurement:
    """What a device measured for one case (times in seconds, memory in bytes)."""

    samples_s: list[float]
    warmup: int
    init_s: float | None = None
    peak_memory_bytes: int | None = None
    conditions: dict = field(default_factory=dict)
    tool_versions: dict = field(default_factory=dict)


class Device(ABC):
    """Somewhere artifacts run. Subclasses set ``kinds``: the artifact kinds they can time."""

    kinds: tuple[str, ...] = ()

    @property
    @abstractmethod
    def name(self) -> str:
        """The device's name in case keys, e.g. 'local' or 'adb:R5CT1234'."""

    @abstractmethod
    def availability(self) -> Availability:
        """Whether this device can be used here, and why not."""

    def available(self) -> bool:
        return self.availability().ok

    def require(self) -> None:
        """Raise a one-line :class:`DeviceError` if the device cannot be used."""
        state = self.availability()
        if not state.ok:
            raise DeviceError(f"device '{self.name}' is not available: {state.reason}",
                              "run 'mobexport devices' to see what is available here")

    @abstractmethod
    def info(self) -> dict:
        """A fingerprint that stays the same between runs on the same hardware and software."""

    def check_kind(self, kind: str) -> None:
        """Refuse an artifact kind this device cannot run (artifact/device mismatch)."""
        if kind not in self.kinds:
            raise DeviceError(f"{kind} artifacts cannot run on device '{self.name}' (it runs {', '.join(self.kinds)})",
                              _where_it_runs(kind))

    def check_batch(self, batch: int) -> None:
        """Refuse a batch size this device's runners cannot feed."""

    @abstractmethod
    def measure(self, job: CaseJob) -> Measurement:
        """Time one case; raise :class:`CaseFailed` if only this case went wrong."""

    def close(self) -> None:
        """Clean up whatever the device holds for the sweep (files pushed to a phone...)."""

    def __enter__(self) -> "Device":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# Every artifact kind a device can run, and where: known without importing any runtime.
WHERE_IT_RUNS = {kind: runtime.where for kind, runtime in RUNTIMES.items()}


def _where_it_runs(kind: str) -> str:
    return where_it_runs(kind)
