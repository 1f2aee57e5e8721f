"""Run a sweep: export what is missing, time every case on the device, append a record per case.

Two phases, each with a progress bar and ETA:

1. **export** every case's artifact with the pipeline (or reuse it), in this
   process, or with ``export_jobs > 1`` in that many worker processes at once
   (tracing and ONNX/ExecuTorch lowering are single-threaded Python: on 2
   cores two exports run in about the time of one; nothing is timed during
   this phase); an export that fails records the case as failed;
2. **measure** every case on the device, in the plan's shuffled order (for the
   local CPU: one subprocess per case). A case that fails is recorded with its
   error and the sweep goes on; a device error (phone unplugged) stops it.

Each finished case is appended to ``results.jsonl`` at once, so an
interrupted sweep loses nothing: run the same command again and cases already
measured successfully are skipped (failed ones are retried).
"""

from __future__ import annotations

import concurrent.futures
import gc
import multiprocessing
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, \
    TimeRemainingColumn

from mobexport import logs
from mobexport.devices.device import CaseFailed, CaseJob, Device, Measurement
from mobexport.devices.measure import MeasurePolicy
from mobexport.errors import OutputDirError, first_line
from mobexport.manifest import vcs_revision

from .artifacts import Prepared, prepare
from .plan import SweepPlan
from mobexport.benchmarks.results.records import BenchRecord, CaseKey, append_record, done_keys, drop_torn_tail, load_results
from mobexport.benchmarks.results.stats import summarize

RESULTS_NAME = "results.jsonl"
Prepare = Callable[..., Prepared]


@dataclass
class SweepOutcome:
    results: Path
    skipped: int = 0
    measured: list[CaseKey] = field(default_factory=list)
    failed: list[CaseKey] = field(default_factory=list)


def record_of(case: CaseKey, prepared: Prepared, measurement: Measurement, device_info: dict,
              policy: MeasurePolicy) -> BenchRecord:
    samples_ms = [s * 1000 for s in measurement.samples_s]
    stats = summarize(samples_ms)
    return BenchRecord(
        case=case,
        latency_ms=stats.to_dict(),
        samples_ms=samples_ms,
        throughput_ips=case.batch / (stats.median / 1000),
        init_ms=measurement.init_s * 1000 if measurement.init_s is not None else None,
        peak_memory_bytes=measurement.peak_memory_bytes,
        macs=prepared.macs,
        params=prepared.params,
        artifact=prepared.artifact_facts(),
        warmup=measurement.warmup,
        iters=len(samples_ms),
        device_info=device_info,
        conditions={**measurement.conditions, "policy": policy.to_dict(), "artifact_reused": prepared.reused},
        tool_versions=measurement.tool_versions,
        mobexport_revision=vcs_revision(),
    )


def failed_record(case: CaseKey, error: str, device_info: dict, prepared: Prepared | None = None) -> BenchRecord:
    return BenchRecord(case=case, status="failed", error=error, device_info=device_info,
                       macs=prepared.macs if prepared else None, params=prepared.params if prepared else None,
                       artifact=prepared.artifact_facts() if prepared else {}, mobexport_revision=vcs_revision())


def _progress(console: Console) -> Progress:
    return Progress(SpinnerColumn(), TextColumn("[bold]{task.fields[phase]}[/] {task.description}"), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                    console=console, transient=False)


def _prepare_in_worker(prepare_case: Prepare, case: CaseKey,
                       out_dir: Path) -> tuple[Prepared | None, str | None, float]:
    """One export in a worker process, with its own duration (not the time spent queued).

    The error travels back as its first line: exceptions may not unpickle.
    """
    started = time.perf_counter()
    try:
        return prepare_case(case, out_dir), None, time.perf_counter() - started
    except Exception as exc:
        return None, first_line(exc, 400, with_type=True), time.perf_counter() - started


def _export_all(todo: list[CaseKey], out_dir: Path, prepare_case: Prepare, jobs: int, progress: Progress, task):
    """Yield (case, Prepared or None, error or None, seconds) as each export finishes."""
    if jobs <= 1:
        for case in todo:
            label = case.label()
            progress.update(task, description=label)
            started = time.perf_counter()
            try:
                prepared = prepare_case(case, out_dir,
                                        on_step=lambda step: progress.update(task, description=f"{label}: {step}"))
            except Exception as exc:  # this case's export failed; the others may not
                yield case, None, first_line(exc, 400, with_type=True), time.perf_counter() - started
            else:
                yield case, prepared, None, time.perf_counter() - started
        return
    # spawn: a fresh interpreter per worker, not a fork of this one's torch threads and rich console.
    context = multiprocessing.get_context("spawn")
    # Each worker sets up logging as this command did: -v shows the converters' warnings, the default hides them.
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=logs.setup,
                                                initargs=(logs.current_verbosity(),)) as pool:
        futures = {pool.submit(_prepare_in_worker, prepare_case, case, out_dir): case for case in todo}
        progress.update(task, description=f"{len(todo)} exports, {jobs} at a time")
        for future in concurrent.futures.as_completed(futures):
            try:
                prepared, error, seconds = future.result()
            except Exception as exc:  # the worker itself died (out of memory, killed)
                prepared, error, seconds = None, f"export worker failed: {first_line(exc, 400, with_type=True)}", 0.0
            yield futures[future], prepared, error, seconds


def run_sweep(plan: SweepPlan, device: Device, out_dir: Path, policy: MeasurePolicy,
              console: Console | None = None, prepare_case: Prepare = prepare, export_jobs: int = 1) -> SweepOutcome:
    """Measure every case of ``plan`` not yet in ``out_dir/results.jsonl``.

    ``export_jobs`` > 1 exports that many cases at once in worker processes
    (``prepare_case`` must then be a module-level function, to be pickled).
    """
    console = console or Console(stderr=True)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputDirError(f"cannot create '{out_dir}' ({exc.strerror or exc})", "choose another --out") from None
    results = out_dir / RESULTS_NAME
    done = done_keys(_resume_from(results, console)) if results.exists() or results.is_symlink() else set()
    _sweep_debris(console)
    cases = plan.cases()
    todo = [c for c in cases if c not in done]
    outcome = SweepOutcome(results, skipped=len(cases) - len(todo))
    if not todo:
        return outcome
    device_info = device.info()

    with _progress(console) as progress:
        exporting = progress.add_task("", total=len(todo), phase="export")
        ready: dict[CaseKey, Prepared] = {}
        for case, prepared, error, seconds in _export_all(todo, out_dir, prepare_case, export_jobs, progress,
                                                          exporting):
            if prepared is None:
                append_record(results, failed_record(case, f"export failed: {error}", device_info))
                outcome.failed.append(case)
                progress.console.print(f"[red]export failed[/] {case.label()}: {error}", highlight=False)
            else:
                ready[case] = prepared
                how = "reused" if prepared.reused else f"exported in {seconds:.0f} s"
                progress.console.print(f"{case.label()}: {how}", highlight=False)
            progress.advance(exporting)
        gc.collect()  # the exports' models and graphs must not sit in memory while timing

        measuring = progress.add_task("", total=len(ready), phase="measure")
        for case in (c for c in todo if c in ready):
            prepared = ready[case]
            progress.update(measuring, description=case.label())
            job = CaseJob(kind=case.target, model=case.model, resolution=case.resolution, batch=case.batch,
                          threads=case.threads, artifact_path=prepared.artifact.path if prepared.artifact else None,
                          manifest=_manifest_dict(prepared), policy=policy, label=case.label())
            try:
                measurement = device.measure(job)
            except CaseFailed as exc:
                append_record(results, failed_record(case, str(exc), device_info, prepared))
                outcome.failed.append(case)
                progress.console.print(f"[yellow]case failed[/] {case.label()}: {exc}", highlight=False)
            else:
                record = record_of(case, prepared, measurement, device_info, policy)
                append_record(results, record)
                outcome.measured.append(case)
                progress.console.print(describe(record), highlight=False)
            progress.advance(measuring)
    return outcome


def _resume_from(results: Path, console: Console) -> list[BenchRecord]:
    """The records already measured; a last line torn by a crash is reported once and cut off."""
    records, torn = load_results(results)
    if torn is not None:
        drop_torn_tail(results, torn)
        console.print(f"[yellow]warning[/]: {torn.describe(results)}; it was removed and that case is measured "
                      "again", highlight=False)
    return records


def _sweep_debris(console: Console) -> None:
    """Case directories of earlier sweeps that were killed: their processes are gone, so are they."""
    from mobexport.devices.local import sweep_stale_case_dirs

    removed = sweep_stale_case_dirs()
    if removed:
        console.print(f"removed {len(removed)} temporary case director{'y' if len(removed) == 1 else 'ies'} left by "
                      "killed runs", highlight=False)


def describe(record: BenchRecord) -> str:
    """One line per measured case, for the log."""
    lat = record.latency_ms
    peak = f", peak {record.peak_memory_bytes / 2**20:.0f} MiB" if record.peak_memory_bytes else ""
    return (f"{record.case.label()}: {lat['median']:.2f} ms (95% CI {lat['ci95_low']:.2f}-{lat['ci95_high']:.2f}, "
            f"n={lat['n']}), {record.throughput_ips:.1f} img/s{peak}")


def _manifest_dict(prepared: Prepared) -> dict | None:
    if prepared.artifact is None:
        return None
    import json

    return json.loads(prepared.artifact.manifest.to_json())
