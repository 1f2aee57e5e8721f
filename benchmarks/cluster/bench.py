"""``mobexport bench --cluster``: the command's cluster path, from checked settings to the report.

Everything that can be refused is refused before the first export: the
address (reachable, joinable), the devices (each advertised by a live node,
each able to run the targets), then the plan itself.
"""

from __future__ import annotations

from pathlib import Path

from mobexport.consoles import stderr_console, stdout_console
from mobexport.devices.measure import MeasurePolicy
from mobexport.devices.registry import DeviceOptions
from mobexport.errors import MobexportError, OutputDirError

from ..sweep.plan import SweepPlan
from ..results.records import read_records
from .connection import connect, require_devices
from .resources import check_targets, parse_cluster_devices


def run_on_cluster(cluster: str, plan: SweepPlan, policy: MeasurePolicy, options: DeviceOptions, device_spec: str,
                   title: str, out_dir: Path, artifact_store: Path | None = None) -> int:
    """The cluster sweep of ``mobexport bench``; exit status as the local one (0, 1 some cases failed)."""
    import ray

    from ..sweep.cli import baseline_note, describe_replaced, earlier_outputs, print_report, sigterm_as_interrupt, \
        write_outputs
    from mobexport.out_lock import locked_out_dir
    from ..sweep.run import RESULTS_NAME
    from .driver import run_cluster_sweep

    devices = parse_cluster_devices(device_spec)
    check_targets(devices, plan.targets)
    plan.device = devices[0]
    console, err_console = stdout_console(), stderr_console()
    where = connect(cluster, lambda: _this_hosts_resources(options))
    try:
        require_devices(devices, where)
        plan.validate()
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputDirError(f"cannot create '{out_dir}' ({exc.strerror or exc})", "choose another --out") from None
        stopped: MobexportError | None = None
        outcome = None
        with locked_out_dir(out_dir), sigterm_as_interrupt():
            earlier = earlier_outputs(out_dir)
            try:
                outcome = run_cluster_sweep(plan, devices, out_dir, policy, options, artifact_store, err_console)
            except MobexportError as exc:
                stopped = exc
            finally:
                rows = write_outputs(out_dir, plan.baseline, title, policy, err_console)
            replaced = describe_replaced(earlier, len(read_records(out_dir / RESULTS_NAME))) if rows else None
    finally:
        ray.shutdown()
    if stopped is not None:
        raise stopped
    if outcome.skipped:
        err_console.print(f"resumed: {outcome.skipped} case(s) already in {out_dir / RESULTS_NAME} were skipped",
                          highlight=False)
    if replaced:
        err_console.print(replaced, highlight=False)
    print_report(console, rows, plan.baseline, out_dir)
    note = baseline_note(rows, plan.baseline)
    if note:
        console.print(f"[yellow]note[/]: {note}", highlight=False)
    return 1 if outcome.failed else 0


def _this_hosts_resources(options: DeviceOptions) -> dict[str, float]:
    """The devices of this host, for a cluster that ``--cluster ray`` starts here."""
    from mobexport.devices.registry import survey

    from .resources import host_resources

    return host_resources(survey(DeviceOptions(adb=options.adb)))
