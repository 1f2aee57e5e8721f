"""BenchRecord: one measured case, one JSON line in ``results.jsonl``.

Curves, summaries and regression verdicts are derived from records; nothing
downstream stores hand-made numbers. A case is identified by its
:class:`CaseKey`; a sweep that finds a key already in its results file skips
it (resume).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator

from mobexport.errors import BenchmarkError

RECORD_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class CaseKey:
    """What was measured: the identity of a case."""

    model: str
    target: str
    quantization: str = "none"
    passes: str = "default"
    device: str = "local"
    resolution: int = 224
    batch: int = 1
    threads: int = 0

    def label(self) -> str:
        extra = "" if self.quantization == "none" else f"/{self.quantization}"
        return f"{self.model}/{self.target}{extra}@{self.resolution}"


@dataclass
class BenchRecord:
    """The measurement of one case. ``status`` is "ok" or "failed" (then ``error`` says why)."""

    case: CaseKey
    status: str = "ok"
    error: str | None = None
    latency_ms: dict = field(default_factory=dict)        # LatencyStats.to_dict()
    samples_ms: list[float] = field(default_factory=list)  # raw samples, to recompute intervals
    throughput_ips: float | None = None                    # images per second = batch / median
    init_ms: float | None = None                           # model load + first run
    peak_memory_bytes: int | None = None                   # peak RSS above the runtime's idle baseline
    macs: int | None = None
    params: int | None = None
    artifact: dict = field(default_factory=dict)           # path, size_bytes, sha256
    warmup: int = 0
    iters: int = 0
    device_info: dict = field(default_factory=dict)        # fingerprint: cpu, cores, os, soc...
    conditions: dict = field(default_factory=dict)         # this case's run: affinity, temperatures, cooldown, policy
    tool_versions: dict = field(default_factory=dict)
    mobexport_revision: str = "unknown"                    # git describe of mobexport's checkout, or "unknown"
    timestamp: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    schema_version: int = RECORD_SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict, source: str = "record") -> "BenchRecord":
        version = data.get("schema_version")
        if version != RECORD_SCHEMA_VERSION:
            raise BenchmarkError(f"{source}: record schema version {version!r}, expected {RECORD_SCHEMA_VERSION}",
                                 "re-run the benchmark with this mobexport")
        try:
            case = CaseKey(**data["case"])
            fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "case"}
            return cls(case=case, **fields)
        except (KeyError, TypeError) as exc:
            raise BenchmarkError(f"{source}: malformed record ({exc})", "is this a mobexport results.jsonl?") from None


def read_records(path: Path) -> list[BenchRecord]:
    """All records of a ``results.jsonl``; a malformed line is an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise BenchmarkError(f"results file '{path}' does not exist", "run 'mobexport bench' first or fix the path")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            raise BenchmarkError(f"{path}:{number} is not JSON", "is this a mobexport results.jsonl?") from None
        records.append(BenchRecord.from_dict(data, source=f"{path}:{number}"))
    return records


def append_record(path: Path, record: BenchRecord) -> None:
    """Append one line and flush it, so an interrupted sweep keeps finished cases."""
    with open(path, "a") as f:
        f.write(record.to_json() + "\n")
        f.flush()


def done_keys(records: Iterable[BenchRecord]) -> set[CaseKey]:
    """Keys of cases measured successfully (failed cases are retried on resume)."""
    return {r.case for r in records if r.status == "ok"}


def ok_records(records: Iterable[BenchRecord]) -> Iterator[BenchRecord]:
    return (r for r in records if r.status == "ok")
