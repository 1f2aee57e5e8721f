"""Sustained runs on a phone: one case timed without pause, to see it heat up and throttle.

The runner is started again and again (chunks of about ``chunk_s``) on the
same pinned cores with no cool-down in between; after each chunk the thermal
zones and the big cores' current frequencies are read. Every sample is time
stamped (a chunk's samples end where the chunk ended, one after the other),
grouped into buckets of ``bucket_s`` (a minute by default) and summarized by
bucket medians; the throttling ratio is the last full bucket's median over
the first's (above 1: the phone got slower).
"""

from __future__ import annotations

import re
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

from mobexport.errors import BenchmarkError

from .android import AndroidDevice, cpu_mask, cpu_temperature
from .device import CaseJob

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h)?\s*$")
_UNIT_S = {None: 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(text: str, what: str = "--sustained") -> float:
    """'10m', '90s', '1.5h' or plain seconds -> seconds."""
    match = _DURATION.match(str(text))
    if match is None or float(match.group(1)) <= 0:
        raise BenchmarkError(f"{what} {text!r} is not a duration", "write it like 10m, 90s or 1h")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


@dataclass
class Bucket:
    start_s: float
    end_s: float
    samples: int
    median_ms: float | None
    cpu_temperature_c: float | None       # the hottest CPU zone at the last reading inside the bucket
    big_core_khz: float | None            # mean current frequency of the big cores, same reading


@dataclass
class SustainedRun:
    device: str
    device_info: dict
    case: dict
    duration_s: float
    bucket_s: float
    affinity: list[int]
    samples: list[tuple[float, float]] = field(default_factory=list)      # (t_s, latency_ms)
    telemetry: list[dict] = field(default_factory=list)                    # t_s, zones, cpu_temperature_c, big_core_khz
    buckets: list[Bucket] = field(default_factory=list)
    tool_versions: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def throttling_ratio(self) -> float | None:
        """Last bucket's median / first bucket's median (buckets with samples only)."""
        filled = [b for b in self.buckets if b.median_ms]
        if len(filled) < 2:
            return None
        return filled[-1].median_ms / filled[0].median_ms

    def to_dict(self) -> dict:
        data = asdict(self)
        data["throttling_ratio"] = self.throttling_ratio
        return data


def bucketize(samples: list[tuple[float, float]], telemetry: list[dict], duration_s: float,
              bucket_s: float) -> list[Bucket]:
    buckets = []
    count = max(1, int(round(duration_s / bucket_s)))
    for index in range(count):
        start, end = index * bucket_s, (index + 1) * bucket_s
        last = index == count - 1
        inside = [ms for t, ms in samples if start <= t < end or (last and t >= end)]
        readings = [r for r in telemetry if start <= r["t_s"] < end or (last and r["t_s"] >= end)]
        reading = readings[-1] if readings else None
        freqs = list(reading["big_core_khz"].values()) if reading and reading["big_core_khz"] else []
        buckets.append(Bucket(start, end, len(inside), statistics.median(inside) if inside else None,
                              reading["cpu_temperature_c"] if reading else None,
                              sum(freqs) / len(freqs) if freqs else None))
    return buckets


def run_sustained(device: AndroidDevice, job: CaseJob, duration_s: float, bucket_s: float = 60.0,
                  chunk_s: float | None = None, clock: Callable[[], float] = time.monotonic,
                  on_chunk: Callable[[float], None] | None = None) -> SustainedRun:
    """Time ``job`` on ``device`` for ``duration_s`` seconds without pausing (see the module's notes)."""
    if bucket_s > duration_s:
        raise BenchmarkError(f"a bucket of {bucket_s:g} s is longer than the {duration_s:g} s run",
                             "use a shorter --sustained-bucket or a longer --sustained")
    chunk_s = chunk_s or min(bucket_s / 4, 15.0)
    cores = device.cores_for(job.threads)
    mask = cpu_mask(cores)
    info = device.info()
    run = SustainedRun(device=device.name, device_info=info, case=job.to_dict(), duration_s=duration_s,
                       bucket_s=bucket_s, affinity=cores)
    with device.pushed_artifact(job) as (runner, remote):
        estimate = device.estimate(runner, remote, job, mask)
        executions = max(1, int(chunk_s / max(estimate, 1e-6)))
        started = clock()
        first = True

        def read_telemetry() -> None:
            zones = device.temperatures()
            run.telemetry.append({"t_s": clock() - started, "zones": zones, "cpu_temperature_c": cpu_temperature(zones),
                                  "big_core_khz": device.frequencies()})

        read_telemetry()                                      # where the run starts from
        while clock() - started < duration_s:
            remaining = duration_s - (clock() - started)
            count = max(1, min(executions, int(remaining / max(estimate, 1e-6))))   # do not run far past the end
            output, _ = device.run_once(runner, remote, count, job.threads, mask)
            ended = clock() - started
            samples = output.samples_s[job.policy.min_warmup:] if first and output.per_iteration else output.samples_s
            first = False
            at = ended
            for seconds in reversed(samples):                 # back from the chunk's end, one sample each
                run.samples.append((max(at, 0.0), seconds * 1000))
                at -= seconds
            read_telemetry()
            if output.notes and not run.notes:
                run.notes = list(output.notes)
            if on_chunk:
                on_chunk(ended)
        run.tool_versions = device.tool_versions(runner, job.kind)
    run.samples.sort()
    run.buckets = bucketize(run.samples, run.telemetry, duration_s, bucket_s)
    return run
