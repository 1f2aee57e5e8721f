"""BenchRecord: one measured case, one JSON line in ``results.jsonl``.

Curves, summaries and regression verdicts are derived from records; nothing
downstream stores hand-made numbers. A case is identified by its
:class:`CaseKey`; a sweep that finds a key already in its results file skips
it (resume).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator

from mobexport.errors import BenchmarkError

RECORD_SCHEMA_VERSION = 1
RESULTS_HINT = "is this a mobexport results.jsonl? If so, measure again into a fresh --out"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaseKey:
    """What was measured: the identity of a case."""

    model: str
    target: str
    quantization: str = "none"
    passes: str = "default"
    device: str = "local"
    resolution: int | str = 224  # a square size, or "HxW"
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
    instructions: dict | None = None                       # bench --metric instructions: devices.instructions count
    timestamp: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    schema_version: int = RECORD_SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict, source: str = "record") -> "BenchRecord":
        """A record from its JSON object, checked against the record schema first."""
        from .schemas import check

        check(data, "record", source, RESULTS_HINT)
        case = CaseKey(**data["case"])
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "case"}
        return cls(case=case, **fields)


@dataclass(frozen=True)
class TornTail:
    """The last line of a results file cut short by a crash mid-write: ``offset`` is where it starts."""

    line: int
    offset: int
    size: int

    def describe(self, path: Path) -> str:
        return (f"{path}: ignored a torn last line (line {self.line}, {self.size} bytes), "
                "left by a run that was killed while writing it")


def load_results(path: Path) -> tuple[list[BenchRecord], TornTail | None]:
    """All records of a ``results.jsonl`` and its torn last line, if any.

    Like a write-ahead log's reader: a last line with no newline that is not
    JSON is a write cut short by a crash and is left out (the caller reports
    it); a bad line anywhere else is corruption and an error naming its line.
    """
    from mobexport.safe_files import loads_json, read_untrusted_text

    path = Path(path)
    text = read_untrusted_text(path, "results file", "run 'mobexport bench' first or fix the path")
    lines = text.split("\n")  # the last item is "" when the file ends with a newline
    records, torn, offset = [], None, 0
    for number, line in enumerate(lines, start=1):
        is_last = number == len(lines)
        start, offset = offset, offset + len(line.encode("utf-8")) + 1
        if not line.strip():
            continue
        where = f"{path}:{number}"
        if is_last:
            try:
                data = loads_json(line, where, RESULTS_HINT)
            except BenchmarkError:
                torn = TornTail(number, start, len(line.encode("utf-8")))
                continue
        else:
            data = loads_json(line, where, RESULTS_HINT)
        records.append(BenchRecord.from_dict(data, source=where))
    return records, torn


def read_records(path: Path, notes: list[str] | None = None) -> list[BenchRecord]:
    """All records of a ``results.jsonl``; a bad line is an error naming it.

    A torn last line is left out and reported: added to ``notes`` when given
    (the caller prints it with its result), else logged as a warning.
    """
    records, torn = load_results(path)
    if torn is not None:
        if notes is not None:
            notes.append(torn.describe(Path(path)))
        else:
            log.warning("%s", torn.describe(Path(path)))
    return records


def drop_torn_tail(path: Path, torn: TornTail) -> None:
    """Cut a torn last line off, so that the next record starts on a fresh line of its own."""
    from mobexport.safe_files import write_failed

    try:
        with open(path, "r+b") as f:
            f.truncate(torn.offset)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise write_failed(Path(path), exc, "results file") from None


def append_record(path: Path, record: BenchRecord) -> None:
    """Append one line and fsync it, so an interrupted sweep keeps every finished case."""
    from mobexport.safe_files import append_line_durably

    append_line_durably(Path(path), record.to_json(), "results file")


def done_keys(records: Iterable[BenchRecord]) -> set[CaseKey]:
    """Keys of cases measured successfully (failed cases are retried on resume)."""
    return {r.case for r in records if r.status == "ok"}


def ok_records(records: Iterable[BenchRecord]) -> Iterator[BenchRecord]:
    return (r for r in records if r.status == "ok")
