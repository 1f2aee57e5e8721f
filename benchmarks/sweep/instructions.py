"""``mobexport bench --metric instructions``: the sweep counts instructions per inference instead of timing.

The same plan and exports as a latency sweep (artifacts are shared: the
export does not depend on the metric), then every case is run under
callgrind at one thread (:mod:`mobexport.devices.instructions`) and one
record per case, with an ``instructions`` field and no latency samples, is
appended to ``results.jsonl`` as soon as it is counted. Since a count does
not depend on what else runs, cases are counted ``jobs`` at a time (default:
one per CPU) — something a latency sweep must never do. Resumes like a
latency sweep; a results file of the other metric is refused, not mixed.
"""

from __future__ import annotations

import concurrent.futures
import os
from pathlib import Path

from rich.console import Console

from mobexport.devices.instructions import DEFAULT_ITERS, DEFAULT_WARMUP, KINDS, count_instructions, \
    stop_counting, valgrind_executable
from mobexport.errors import BenchmarkError, MobexportError, OutputDirError
from mobexport.manifest import tool_versions, vcs_revision

from mobexport.benchmarks.sweep.artifacts import Prepared, prepare
from mobexport.benchmarks.regress.instruction_baseline import metric_of
from mobexport.benchmarks.sweep.plan import SweepPlan
from mobexport.benchmarks.results.records import BenchRecord, CaseKey, append_record, done_keys, drop_torn_tail, load_results
from mobexport.benchmarks.sweep.run import RESULTS_NAME, SweepOutcome, _export_all, _progress, failed_record, first_line

METRIC_THREADS = 1  # counts are taken at one thread: more threads add scheduling, not the model's work


def check_plan(plan: SweepPlan) -> None:
    """Refuse, before any export, what cannot be counted: other targets or devices, other thread counts."""
    valgrind_executable()
    other = [t for t in plan.targets if t not in KINDS]
    if other:
        raise BenchmarkError(f"--metric instructions counts {', '.join(KINDS)} artifacts, not {', '.join(other)}",
                             f"use --targets {','.join(KINDS)}, or --metric latency for the others")
    if plan.device != "local":
        raise BenchmarkError(f"--metric instructions runs on this host's CPU, not on '{plan.device}'",
                             "use --device local, or --metric latency on that device")
    other = [n for n in plan.thread_counts if n not in (0, METRIC_THREADS)]
    if other:
        raise BenchmarkError(f"--metric instructions counts at one thread, not --threads {','.join(map(str, other))}",
                             "leave --threads out (or give 1)")
    plan.threads = METRIC_THREADS


def instruction_record(case: CaseKey, prepared: Prepared, count, device_info: dict) -> BenchRecord:
    return BenchRecord(
        case=case, instructions=count.to_dict(), macs=prepared.macs, params=prepared.params,
        artifact=prepared.artifact_facts(), warmup=count.warmup, iters=len(count.samples), device_info=device_info,
        conditions={"metric": "instructions", "counter": count.counter, "threads": METRIC_THREADS,
                    "artifact_reused": prepared.reused},
        tool_versions={**tool_versions(), **count.tool_versions}, mobexport_revision=vcs_revision())


def refuse_mixing(results: Path, metric: str) -> None:
    """A sweep of one metric never resumes into a results file of the other (its cases would count as done)."""
    if not Path(results).is_file():
        return
    records, _ = load_results(results)
    other = [r for r in records if r.status == "ok" and metric_of(r) != metric]
    if other:
        raise BenchmarkError(f"{results} holds {metric_of(other[0])} measurements ({other[0].case.label()}), "
                             f"which {metric} results would mix with", f"give --metric {metric} its own --out")


def _resume(results: Path, console: Console) -> set[CaseKey]:
    if not (results.exists() or results.is_symlink()):
        return set()
    refuse_mixing(results, "instructions")
    records, torn = load_results(results)
    if torn is not None:
        drop_torn_tail(results, torn)
        console.print(f"[yellow]warning[/]: {torn.describe(results)}; it was removed", highlight=False)
    return done_keys(records)


def run_instruction_sweep(plan: SweepPlan, out_dir: Path, device_info: dict, console: Console | None = None,
                          prepare_case=prepare, export_jobs: int = 1, jobs: int | None = None,
                          warmup: int = DEFAULT_WARMUP, iters: int = DEFAULT_ITERS,
                          timeout_s: float = 1800.0) -> SweepOutcome:
    """Count every case of ``plan`` not yet in ``out_dir/results.jsonl``; ``jobs`` cases at a time."""
    console = console or Console(stderr=True)
    check_plan(plan)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputDirError(f"cannot create '{out_dir}' ({exc.strerror or exc})", "choose another --out") from None
    results = out_dir / RESULTS_NAME
    done = _resume(results, console)
    cases = plan.cases()
    todo = [c for c in cases if c not in done]
    outcome = SweepOutcome(results, skipped=len(cases) - len(todo))
    if not todo:
        return outcome
    jobs = jobs or max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)

    with _progress(console) as progress:
        exporting = progress.add_task("", total=len(todo), phase="export")
        ready: dict[CaseKey, Prepared] = {}
        for case, prepared, error, _ in _export_all(todo, out_dir, prepare_case, export_jobs, progress, exporting):
            if prepared is None:
                append_record(results, failed_record(case, f"export failed: {error}", device_info))
                outcome.failed.append(case)
                progress.console.print(f"[red]export failed[/] {case.label()}: {error}", highlight=False)
            else:
                ready[case] = prepared
            progress.advance(exporting)

        counting = progress.add_task(f"{len(ready)} cases, {jobs} at a time", total=len(ready), phase="count")
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=jobs)
        futures = {pool.submit(count_instructions, case.target, ready[case].artifact.path, case.resolution,
                               case.batch, warmup, iters, timeout_s): case for case in todo if case in ready}
        try:
            for future in concurrent.futures.as_completed(futures):
                case = futures[future]
                try:
                    count = future.result()
                except MobexportError as exc:  # this case failed; the others may not
                    append_record(results, failed_record(case, exc.one_line(), device_info, ready[case]))
                    outcome.failed.append(case)
                    progress.console.print(f"[yellow]case failed[/] {case.label()}: {exc.one_line()}",
                                           highlight=False)
                except Exception as exc:
                    append_record(results, failed_record(case, first_line(exc), device_info, ready[case]))
                    outcome.failed.append(case)
                    progress.console.print(f"[yellow]case failed[/] {case.label()}: {first_line(exc)}",
                                           highlight=False)
                else:
                    append_record(results, instruction_record(case, ready[case], count, device_info))
                    outcome.measured.append(case)
                    progress.console.print(f"{case.label()}: {count.median:,} instructions per inference "
                                           f"(spread {count.spread:.3%}, n={len(count.samples)})", highlight=False)
                progress.advance(counting)
        except BaseException:  # Ctrl-C, SIGTERM, a device error: no count may outlive the sweep
            pool.shutdown(wait=False, cancel_futures=True)
            stop_counting()
            raise
        pool.shutdown()
    return outcome


def write_table(out_dir: Path) -> Path | None:
    """``instructions.csv``: one row per counted case, from everything in results.jsonl."""
    from mobexport.benchmarks.results.records import read_records
    from mobexport.safe_files import write_text_durably

    results = Path(out_dir) / RESULTS_NAME
    if not results.exists():
        return None
    rows = ["model,target,quantization,passes,resolution,status,instructions,spread,macs,error"]
    for r in read_records(results):
        count = r.instructions or {}
        rows.append(",".join(str(v) for v in (
            r.case.model, r.case.target, r.case.quantization, r.case.passes, r.case.resolution, r.status,
            count.get("median", ""), count.get("spread", ""), r.macs if r.macs is not None else "",
            (r.error or "").replace(",", ";").replace("\n", " "))))
    path = Path(out_dir) / "instructions.csv"
    write_text_durably(path, "\n".join(rows) + "\n", "instructions table")
    return path


def main_instructions(plan: SweepPlan, device_spec: str, out_dir: Path, export_jobs: int, jobs: int | None,
                      console: Console) -> int:
    """The bench command with --metric instructions: exit 0 all counted, 1 some cases failed, 2 bad input."""
    from mobexport.consoles import stderr_console
    from mobexport.devices.local import LocalDevice

    from mobexport.benchmarks.sweep.cli import sigterm_as_interrupt
    from mobexport.out_lock import locked_out_dir

    plan.device = "local" if device_spec == "local" else device_spec
    check_plan(plan)  # valgrind, targets, device, threads: before torch is imported by validate
    plan.validate()
    err_console = stderr_console()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputDirError(f"cannot create '{out_dir}' ({exc.strerror or exc})", "choose another --out") from None
    with locked_out_dir(out_dir), sigterm_as_interrupt():
        outcome = run_instruction_sweep(plan, out_dir, LocalDevice().info(), err_console, export_jobs=export_jobs,
                                        jobs=jobs)
        table = write_table(out_dir)
    if outcome.skipped:
        err_console.print(f"resumed: {outcome.skipped} case(s) already in {outcome.results} were skipped",
                          highlight=False)
    console.print(f"wrote {outcome.results}" + (f" and {table}" if table else ""), highlight=False)
    return 1 if outcome.failed else 0
