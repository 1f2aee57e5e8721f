"""The driver of a cluster sweep: submit exports and measurements, stream records back.

Same contract as :func:`mobexport.benchmarks.sweep.run_sweep`: each finished
case is appended to ``OUT/results.jsonl`` at once with the local sweep's own
record functions (so a killed driver loses nothing finished and the next run
skips what succeeded), and a failed case is recorded with its reason while
the sweep goes on.

What is retried: a task whose node or worker died (a Ray error, not a case
failure) is submitted again, at most ``max_attempts`` times in all, when a live
node still advertises its device (or, for exports, any CPU); otherwise its
cases are recorded as failed with the reason. A measurement still queued for
a device whose node left the cluster is cancelled and recorded the same way,
rather than waiting forever. A case that fails on its device (a crash, a
disconnected phone) is recorded as failed and not retried in this run.

Exports of cases that share a content key (the same export for two phones)
run once. Measurements on a phone start as soon as its artifact is ready; on
a host's own CPU or GPU they wait until no export is running, as in a local
sweep, so nothing is timed while exports load the cluster.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rich.console import Console

from mobexport import logs
from mobexport.devices.device import EAGER, CaseJob
from mobexport.devices.measure import MeasurePolicy
from mobexport.devices.registry import DeviceOptions
from mobexport.errors import MobexportError, OutputDirError

from ..sweep.artifacts import Prepared, costs_from, export_config, reusable, same_export
from ..sweep.plan import SweepPlan
from ..results.records import BenchRecord, CaseKey, append_record, done_keys
from ..sweep.run import RESULTS_NAME, SweepOutcome, _progress, _resume_from, describe, failed_record, record_of
from .bundles import artifact_sha256, pack, unpack
from .connection import advertised_devices, alive_resources
from .resources import HOST_DEVICES, resource_name
from .tasks import ExportResult, MeasureResult, export_case, measure_case

MAX_ATTEMPTS = 3
POLL_S = 1.0


def cluster_cases(plan: SweepPlan, devices: list[str]) -> list[CaseKey]:
    """The plan's cases on each device, in the plan's (shuffled) order per device."""
    return [case for device in devices for case in dataclasses.replace(plan, device=device).cases()]


def export_identity(case: CaseKey, out_dir: Path) -> str:
    """Cases with equal identity need one export: the export cache's content key (eager: model and size)."""
    if case.target == EAGER:
        return f"{EAGER}/{case.model}@{case.resolution}"
    from ..sweep.export_cache import cache_key

    return cache_key(export_config(case, out_dir))


@dataclass
class _Export:
    cases: list[CaseKey]
    attempts: int = 1


@dataclass
class _Measure:
    case: CaseKey
    prepared: Prepared
    bundle_ref: object
    attempts: int = 1


@dataclass
class ClusterSweep:
    """One cluster sweep's settings and progress."""

    plan: SweepPlan
    devices: list[str]
    out_dir: Path
    policy: MeasurePolicy
    options: DeviceOptions = field(default_factory=DeviceOptions)
    artifact_store: Path | None = None
    console: Console | None = None
    on_record: Callable[[BenchRecord], None] | None = None
    max_attempts: int = MAX_ATTEMPTS

    def run(self) -> SweepOutcome:
        import ray

        self.console = self.console or Console(stderr=True)
        out_dir = Path(self.out_dir)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputDirError(f"cannot create '{out_dir}' ({exc.strerror or exc})",
                                 "choose another --out") from None
        self.results = out_dir / RESULTS_NAME
        done = done_keys(_resume_from(self.results, self.console)) if self.results.exists() else set()
        cases = cluster_cases(self.plan, self.devices)
        todo = [c for c in cases if c not in done]
        self.outcome = SweepOutcome(self.results, skipped=len(cases) - len(todo))
        if not todo:
            return self.outcome
        self._export_task = ray.remote(num_cpus=1, max_retries=0)(export_case)
        self._measure_task = ray.remote(max_retries=0)(measure_case)
        self.exports: dict[object, _Export] = {}
        self.measures: dict[object, _Measure] = {}
        self.deferred: list[_Measure] = []      # host CPU/GPU cases: after the exports
        groups: dict[str, list[CaseKey]] = {}
        for case in todo:
            groups.setdefault(export_identity(case, out_dir), []).append(case)
        try:
            with _progress(self.console) as progress:
                self.progress = progress
                self.exporting = progress.add_task("", total=len(groups), phase="export")
                self.measuring = progress.add_task("", total=len(todo), phase="measure")
                for group in groups.values():
                    self._start_export(group)
                self._loop()
        except BaseException:
            for ref in [*self.exports, *self.measures]:  # free the phones: nothing more runs for this sweep
                ray.cancel(ref, force=True)
            raise
        return self.outcome

    # -- exports --------------------------------------------------------------------------------
    def _store(self) -> Path | None:
        if self.artifact_store is not None:
            return Path(self.artifact_store)
        from ..sweep.export_cache import default_cache_dir

        return default_cache_dir()

    def _start_export(self, group: list[CaseKey], attempts: int = 1) -> None:
        """Reuse the artifact from OUT or the store here, else submit an export task."""
        found = self._local_artifact(group[0])
        if found is not None:
            self.progress.advance(self.exporting)
            self._exported(group, found)
            return
        store = str(self.artifact_store) if self.artifact_store is not None else None
        ref = self._export_task.remote(group[0], store, logs.current_verbosity())
        self.exports[ref] = _Export(group, attempts)

    def _local_artifact(self, case: CaseKey) -> ExportResult | None:
        if case.target == EAGER:
            return None
        artifact = reusable(case, self.out_dir)
        if artifact is None and self._store() is not None:
            from ..sweep.export_cache import ExportCache

            config = export_config(case, self.out_dir)
            artifact = ExportCache(self._store()).restore(config, config.artifact_dir(),
                                                          lambda found: same_export(case, found))
        if artifact is None:
            return None
        macs, params = costs_from(artifact.manifest)
        return ExportResult(bundle=pack(artifact.directory), sha256=artifact_sha256(artifact), macs=macs,
                            params=params, reused=True)

    def _exported(self, group: list[CaseKey], result: ExportResult) -> None:
        import ray

        label = group[0].label()
        if result.error is not None:
            for case in group:
                self._record(failed_record(case, f"export failed: {result.error}", {"name": case.device}))
                self.progress.advance(self.measuring)
            self.progress.console.print(f"[red]export failed[/] {label}: {result.error}", highlight=False)
            return
        prepared_artifact = None
        if result.bundle is not None:
            destination = export_config(group[0], self.out_dir).artifact_dir()
            existing = reusable(group[0], self.out_dir)
            try:
                prepared_artifact = existing if existing is not None and artifact_sha256(existing) == result.sha256 \
                    else unpack(result.bundle, destination, result.sha256)
            except (MobexportError, OSError) as exc:  # a damaged bundle or a full disk: these cases fail
                self._exported(group, ExportResult(error=f"artifact not received: {exc}"))
                return
        how = "reused" if result.reused else f"exported in {result.seconds:.0f} s"
        self.progress.console.print(f"{label}: {how}", highlight=False)
        bundle_ref = ray.put(result.bundle) if result.bundle is not None else None
        for case in group:
            prepared = Prepared(case, prepared_artifact, result.macs, result.params, reused=result.reused)
            job = _Measure(case, prepared, bundle_ref)
            if case.device.partition(":")[0] in HOST_DEVICES:
                self.deferred.append(job)
            else:
                self._start_measure(job)

    # -- measurements -------------------------------------------------------------------------
    def _start_measure(self, job: _Measure) -> None:
        case, prepared = job.case, job.prepared
        artifact = prepared.artifact
        case_job = CaseJob(kind=case.target, model=case.model, resolution=case.resolution, batch=case.batch,
                           threads=case.threads, artifact_path=artifact.path if artifact else None,
                           manifest=json.loads(artifact.manifest.to_json()) if artifact else None,
                           policy=self.policy, label=case.label())
        # num_cpus=0 for a phone: its host's CPUs stay free for exports. A host device takes one CPU.
        cpus = 1 if case.device.partition(":")[0] in HOST_DEVICES else 0
        ref = self._measure_task.options(resources={resource_name(case.device): 1}, num_cpus=cpus).remote(
            case.device, self.options, case_job.to_dict(), job.bundle_ref,
            artifact_sha256(artifact) if artifact else None)
        self.measures[ref] = job

    def _measured(self, job: _Measure, result: MeasureResult) -> None:
        case, prepared = job.case, job.prepared
        cluster = {**result.node, "attempt": job.attempts}
        if result.measurement is None:
            record = failed_record(case, result.error or "failed", result.device_info, prepared)
            record.conditions["cluster"] = cluster
            self._record(record)
            self.progress.console.print(f"[yellow]case failed[/] {case.label()} on {case.device}: {result.error}",
                                        highlight=False)
        else:
            record = record_of(case, prepared, result.measurement, result.device_info, self.policy)
            record.conditions["cluster"] = cluster
            self._record(record)
            self.progress.console.print(f"{case.device}: {describe(record)}", highlight=False)
        self.progress.advance(self.measuring)

    def _lost(self, job: _Measure, reason: str) -> None:
        record = failed_record(job.case, reason, {"name": job.case.device}, job.prepared)
        record.conditions["cluster"] = {"attempt": job.attempts, "lost": True}
        self._record(record)
        self.progress.console.print(f"[red]case lost[/] {job.case.label()}: {reason}", highlight=False)
        self.progress.advance(self.measuring)

    def _record(self, record: BenchRecord) -> None:
        append_record(self.results, record)
        (self.outcome.measured if record.status == "ok" else self.outcome.failed).append(record.case)
        if self.on_record is not None:
            self.on_record(record)

    # -- the loop ---------------------------------------------------------------------------------
    def _loop(self) -> None:
        import ray

        while self.exports or self.measures or self.deferred:
            if not self.exports and self.deferred:
                deferred, self.deferred = self.deferred, []
                for job in deferred:
                    self._start_measure(job)
            ready, _ = ray.wait([*self.exports, *self.measures], num_returns=1, timeout=POLL_S)
            for ref in ready:
                if ref in self.exports:
                    self._export_done(ref)
                else:
                    self._measure_done(ref)
            self._drop_orphans()

    def _export_done(self, ref) -> None:
        import ray

        pending = self.exports.pop(ref)
        try:
            result = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # a bug in the task itself
            result = ExportResult(error=f"export task failed: {_ray_reason(exc)}")
        except ray.exceptions.RayError as exc:  # its node or worker died
            if pending.attempts < self.max_attempts:
                self.progress.console.print(f"[yellow]export lost[/] {pending.cases[0].label()} "
                                            f"({_ray_reason(exc)}); exporting again", highlight=False)
                self._start_export(pending.cases, pending.attempts + 1)
                return
            result = ExportResult(error=f"export lost {pending.attempts} times: {_ray_reason(exc)}")
        self.progress.advance(self.exporting)
        self._exported(pending.cases, result)

    def _measure_done(self, ref) -> None:
        import ray

        job = self.measures.pop(ref)
        try:
            result = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            result = MeasureResult(error=f"measuring task failed: {_ray_reason(exc)}")
        except ray.exceptions.RayError as exc:  # the node or worker died while measuring
            reason = _ray_reason(exc)
            if job.attempts < self.max_attempts and job.case.device in advertised_devices():
                self.progress.console.print(f"[yellow]case interrupted[/] {job.case.label()} on {job.case.device} "
                                            f"({reason}); measuring it again", highlight=False)
                self._start_measure(dataclasses.replace(job, attempts=job.attempts + 1))
            else:
                self._lost(job, f"lost: the node measuring it on {job.case.device} failed ({reason}) and no live "
                                "node advertises that device")
            return
        self._measured(job, result)

    def _drop_orphans(self) -> None:
        """Cancel queued measurements whose device no live node advertises (its node died)."""
        import ray

        if not self.measures:
            return
        advertised = advertised_devices(alive_resources())
        for ref, job in list(self.measures.items()):
            if job.case.device not in advertised:
                del self.measures[ref]
                ray.cancel(ref, force=True)
                self._lost(job, f"lost: no live node advertises device {job.case.device} any more "
                                "(its node left the cluster)")


def _ray_reason(exc: BaseException) -> str:
    text = str(exc).strip()
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return f"{type(exc).__name__}: {line[:300]}" if line else type(exc).__name__


def run_cluster_sweep(plan: SweepPlan, devices: list[str], out_dir: Path, policy: MeasurePolicy,
                      options: DeviceOptions | None = None, artifact_store: Path | None = None,
                      console: Console | None = None,
                      on_record: Callable[[BenchRecord], None] | None = None) -> SweepOutcome:
    """Measure every case of ``plan`` on each of ``devices`` over the connected Ray cluster."""
    return ClusterSweep(plan, devices, Path(out_dir), policy, options or DeviceOptions(), artifact_store, console,
                        on_record).run()
