"""Inject a known slowdown into measured inferences, to check that regression tracking catches it.

``MOBEXPORT_INJECT_SLOWDOWN="mobile_former_52m@160=0.15,mobile_former_294m@*=0.15"`` makes
every inference of the matching cases last ``1 + fraction`` times as long:
after the real inference returns, the runner waits ``fraction x`` its duration,
inside the timed window. It is a validation tool (how often does ``mobexport
regress`` flag a 15% slowdown?), never something a user's numbers should
carry; a worker that applies it records the fraction in the case's conditions.

The wait sleeps for most of the time and spins for the last 0.2 ms, so the
injected fraction is accurate even for millisecond inferences (a plain
``time.sleep`` overshoots by tens of microseconds).

Two ways to apply it:

* the case worker calls :func:`apply_to_runner` after building its runner
  (the hook described in docs/regression.md);
* until then, ``python -m mobexport.benchmarks.regress.slowdown_injection JOB RESULT``
  is a drop-in worker command for :class:`mobexport.devices.local.LocalDevice`
  (``worker_command=``) that applies it around the standard case worker.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Callable, Mapping

from mobexport.errors import BenchmarkError

ENV_VAR = "MOBEXPORT_INJECT_SLOWDOWN"
SPIN_S = 0.0002


@dataclass(frozen=True)
class Injection:
    model: str              # a model name, or "*" for every model
    resolution: int | None  # None: every resolution
    fraction: float

    def matches(self, model: str, resolution: int) -> bool:
        return self.model in ("*", model) and self.resolution in (None, resolution)


def parse_injections(text: str) -> list[Injection]:
    """``MODEL@RES=FRACTION`` items, comma-separated; ``*`` for any model or resolution."""
    injections = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            target, fraction = item.split("=")
            model, resolution = target.split("@") if "@" in target else (target, "*")
            injection = Injection(model.strip(), None if resolution.strip() == "*" else int(resolution),
                                  float(fraction))
        except ValueError:
            raise BenchmarkError(f"{ENV_VAR}: cannot read '{item}'",
                                 "write MODEL@RESOLUTION=FRACTION, e.g. mobile_former_52m@160=0.15") from None
        if not 0 <= injection.fraction <= 10:
            raise BenchmarkError(f"{ENV_VAR}: fraction {injection.fraction} is out of range", "e.g. 0.15 for 15%")
        injections.append(injection)
    return injections


def fraction_for(injections: list[Injection], model: str, resolution: int) -> float:
    """The slowdown for a case: the last matching item wins."""
    fraction = 0.0
    for injection in injections:
        if injection.matches(model, resolution):
            fraction = injection.fraction
    return fraction


def wait_until(deadline: float) -> None:
    remaining = deadline - time.perf_counter()
    if remaining > SPIN_S:
        time.sleep(remaining - SPIN_S)
    while time.perf_counter() < deadline:
        pass


def slowed(infer: Callable, fraction: float) -> Callable:
    """``infer`` followed by a wait of ``fraction`` times its own duration."""

    def infer_slowly(*args, **kwargs):
        start = time.perf_counter()
        out = infer(*args, **kwargs)
        end = time.perf_counter()
        wait_until(end + fraction * (end - start))
        return out

    return infer_slowly


def apply_to_runner(runner, model: str, resolution: int, environ: Mapping[str, str] = os.environ) -> float:
    """Slow ``runner.infer`` down if the environment asks for it for this case; the fraction applied."""
    fraction = fraction_for(parse_injections(environ.get(ENV_VAR, "")), model, resolution)
    if fraction > 0:
        runner.infer = slowed(runner.infer, fraction)
    return fraction


def main(argv: list[str]) -> int:
    """The standard case worker, with the injection applied to the runner it builds and
    recorded in the case's conditions (``injected_slowdown``)."""
    if len(argv) != 2 or argv[0] in ("-h", "--help"):  # a worker command, listed by 'mobexport --help'
        print("usage: python -m mobexport.benchmarks.regress.slowdown_injection JOB RESULT\n\n"
              + __doc__.split("\n\n")[0] + f"\nThe slowdown comes from ${ENV_VAR}; see docs/regression.md.")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    import json
    from pathlib import Path

    from mobexport.devices import case_worker

    build_runner = case_worker.build_runner
    applied = []

    def build_and_slow(job, *args, **kwargs):
        runner, *rest = build_runner(job, *args, **kwargs)
        applied.append(apply_to_runner(runner, job.model, job.resolution))
        return (runner, *rest)

    case_worker.build_runner = build_and_slow
    try:
        status = case_worker.main(argv)
    finally:
        case_worker.build_runner = build_runner
    result_path = Path(argv[1])
    result = json.loads(result_path.read_text()) if result_path.is_file() else {}
    if result.get("ok") and applied and applied[0] > 0:
        result["conditions"]["injected_slowdown"] = applied[0]
        case_worker.write_atomic(result_path, result)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
