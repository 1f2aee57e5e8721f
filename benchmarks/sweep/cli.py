"""``mobexport bench``: resolution sweeps on a device, with curves, a summary and plots.

    mobexport bench --models mobile_former_294m,mobilenet_v3_large_100 --targets onnx,executorch \\
        --resolutions 128,160,192,224,256,320,384,448,512 --device local
    mobexport bench --suite mobile_former_vs_mobilenetv3
    mobexport bench --suite smoke --device adb --ort-perf-test build/onnxruntime_perf_test

Writes OUT/results.jsonl (one record per case), curves.csv, summary.md and
four PNGs. Exit status: 0 every case measured, 1 some cases failed (their
errors are in the records and the summary), 2 bad input or a device error.

One run at a time per OUT (an exclusive lock on OUT/.bench.lock); a run
killed at any point loses no finished record and is resumed by the next.
"""

from __future__ import annotations

import argparse
import signal
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

from rich.console import Console

from mobexport import signals
from mobexport.consoles import stderr_console, stdout_console
from mobexport.devices.android import CoolingPolicy
from mobexport.devices.android_runners import ORT_EXECUTION_PROVIDERS
from mobexport.devices.device import EAGER, WHERE_IT_RUNS
from mobexport.devices.measure import MeasurePolicy
from mobexport.devices.registry import DeviceOptions, get_device
from mobexport.errors import BenchmarkError, InvalidOptionError, MobexportError, OutputDirError
from mobexport.export.quantize.support import MODES
from mobexport.options import (
    ArgumentParser,
    add_verbosity_options,
    csv_of,
    existing_file,
    finite_nonneg_float,
    nonneg_int,
    positive_float,
    positive_int,
    resolution,
    writable_dir,
)
from mobexport.shapes import Resolution

# Only light modules above: the sweep, the export pipeline and torch are imported
# once the command line and the device have been checked (see main), so a
# refusal takes no longer than parsing.
from mobexport.out_lock import locked_out_dir
from .plan import SweepPlan
from mobexport.benchmarks.results.records import read_records
from mobexport.safe_files import write_failed, write_text_durably
from .suite import list_suites, load_suite
from .run import RESULTS_NAME, run_sweep

DEFAULT_OUT = Path("bench-out")
DEFAULT_BASELINE = "mobilenet_v3_large_100"
DEFAULTS = {"device": "local", "threads": 0, "batch": 1, "quantize": "none", "passes": "default"}


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="mobexport bench",
                                description="Resolution sweeps on a device: export each (model, target, resolution), "
                                            "time it, and write results.jsonl, curves.csv, summary.md and plots.",
                       epilog="example: mobexport bench --models mobile_former_294m,mobilenet_v3_large_100 "
                              "--targets onnx --resolutions 160,224,320 --device local\n"
                              "See docs/benchmarking.md for devices, the measuring policy and suites.",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_argument_group("what to measure")
    what.add_argument("--suite", help="predefined sweep (see --list-suites) or a .toml/.json suite file")
    what.add_argument("--list-suites", action="store_true", help="list the predefined suites and exit")
    what.add_argument("--models", type=csv_of(str), metavar="M1,M2",
                      help="comma-separated zoo models or model references (path/to/file.py:factory, "
                           "package.module:factory, prog.pt2)")
    what.add_argument("--targets", type=csv_of(str), metavar="T1,T2",
                      help=f"comma-separated targets: onnx, executorch, litert, ... or {EAGER} (eager)")
    what.add_argument("--resolutions", type=csv_of(resolution), metavar="R1,R2",
                      help="comma-separated input sizes, square or HxW, e.g. 128,224,256x320")
    what.add_argument("--baseline", help=f"model the others are compared with (default: {DEFAULT_BASELINE} if swept)")
    what.add_argument("--quantize", choices=MODES, help="quantization passed to the export pipeline (default: none)")
    what.add_argument("--passes", help="graph passes passed to the export pipeline: default, none or id,id,... "
                                       "(see 'mobexport passes'; default: default)")
    what.add_argument("--batch", type=positive_int, help="batch size (default: 1)")
    where = p.add_argument_group("where and how")
    where.add_argument("--device", help="local, cuda, adb[:SERIAL] or macos[:UNITS] (default: local)")
    where.add_argument("--threads", type=csv_of(nonneg_int),
                       help="runtime intra-op threads, 0 = runtime default; a list such as 1,4 is an axis of the sweep "
                            "(on a phone: up to its big-core count pinned to the big cores, more to all cores) "
                            "(default: 0)")
    where.add_argument("--sustained", metavar="DURATION",
                       help="time the one case continuously for DURATION (10m, 90s) on a phone: per-minute medians, "
                            "temperatures, core clocks, throttling ratio and a plot (sustained.*)")
    where.add_argument("--sustained-bucket", metavar="DURATION",
                       help="length of the sustained run's buckets (default: 1m)")
    where.add_argument("--cpus", type=csv_of(nonneg_int), help="local: pin each case to these CPUs, e.g. 0,1")
    where.add_argument("--min-time", type=positive_float, help="seconds of measured inference per case (default: 2)")
    where.add_argument("--min-iters", type=positive_int, help="at least this many samples per case (default: 10)")
    where.add_argument("--max-iters", type=positive_int, help="at most this many samples per case (default: 1000)")
    where.add_argument("--warmup-time", type=finite_nonneg_float, help="seconds of warmup per case (default: 0.5)")
    where.add_argument("--case-timeout", type=positive_float, default=1800.0, help="seconds before a case counts as hung (default: 1800)")
    where.add_argument("--export-jobs", type=positive_int, default=1, metavar="N",
                       help="export N cases at once in worker processes; nothing is timed meanwhile (default: 1)")
    where.add_argument("--cluster", metavar="ray[://HOST:PORT]|HOST:PORT",
                       help="run the sweep on a Ray cluster: exports on its CPUs, each case on the node owning its "
                            "device; --device then lists devices, e.g. adb:SERIAL,local:HOST (docs/benchmarking.md)")
    where.add_argument("--artifact-store", type=writable_dir, metavar="DIR",
                       help="shared directory of content-addressed exports, reused by every run and host "
                            "(default: the export cache of each host)")
    where.add_argument("--seed", type=nonneg_int, default=0, help="seed of the case order shuffle (default: 0)")
    where.add_argument("--metric", choices=("latency", "instructions"), default="latency",
                       help="latency: time each case (default); instructions: count the instructions of one "
                            "inference under callgrind at one thread (onnx, executorch; needs valgrind)")
    where.add_argument("--jobs", type=positive_int, metavar="N",
                       help="--metric instructions: count N cases at once (default: one per CPU)")
    where.add_argument("--no-shuffle", action="store_true", help="measure cases in the listed order")
    android = p.add_argument_group("Android (adb)")
    android.add_argument("--adb", type=existing_file, help="adb executable (default: 'adb' on PATH)")
    android.add_argument("--executor-runner", type=existing_file, help="ExecuTorch executor_runner built for the phone")
    android.add_argument("--ep", choices=ORT_EXECUTION_PROVIDERS,
                       help="phone: ONNX Runtime execution provider for onnxruntime_perf_test (default: cpu)")
    android.add_argument("--ort-perf-test", type=existing_file, help="onnxruntime_perf_test built for the phone")
    android.add_argument("--benchmark-model", type=existing_file, help="LiteRT benchmark_model built for the phone")
    android.add_argument("--cooldown-c", type=positive_float, help="wait between cases until the CPU is below this (default: 42)")
    android.add_argument("--cooldown-max-s", type=finite_nonneg_float, help="give up waiting for the cooldown after this (default: 300)")
    android.add_argument("--cooldown-poll-s", type=positive_float, help="seconds between temperature reads (default: 5)")
    out = p.add_argument_group("output")
    out.add_argument("--out", type=writable_dir, default=DEFAULT_OUT, help=f"output directory (default: ./{DEFAULT_OUT})")
    add_verbosity_options(p)
    return p


def _pick(cli, suite: dict, key: str, default=None):
    return cli if cli is not None else suite.get(key, default)


def settings_from(args: argparse.Namespace) -> tuple[SweepPlan, MeasurePolicy, DeviceOptions, str, str]:
    """Command line over suite over defaults; returns (plan, policy, device options, device spec, title)."""
    suite = load_suite(args.suite) if args.suite else {}
    models = _pick(args.models, suite, "models")
    targets = _pick(args.targets, suite, "targets")
    resolutions = _pick(args.resolutions, suite, "resolutions")
    missing = [flag for flag, value in (("--models", models), ("--targets", targets), ("--resolutions", resolutions))
               if not value]
    if missing:
        raise BenchmarkError(f"nothing to measure: {', '.join(missing)} not given",
                             "give them, or --suite NAME (see --list-suites)")
    try:
        resolutions = [Resolution.of(r).to_json() for r in resolutions]
    except InvalidOptionError:
        raise BenchmarkError(f"resolutions must be positive sizes (224 or HxW), got {resolutions}",
                             "e.g. --resolutions 128,224,256x320") from None
    baseline = _pick(args.baseline, suite, "baseline", DEFAULT_BASELINE if DEFAULT_BASELINE in models else None)
    defaults = MeasurePolicy()
    try:
        policy = MeasurePolicy(
            min_time_s=float(_pick(args.min_time, suite, "min_time", defaults.min_time_s)),
            min_iters=int(_pick(args.min_iters, suite, "min_iters", defaults.min_iters)),
            max_iters=int(_pick(args.max_iters, suite, "max_iters", defaults.max_iters)),
            warmup_time_s=float(_pick(args.warmup_time, suite, "warmup_time", defaults.warmup_time_s)),
        )
    except ValueError as exc:
        raise BenchmarkError(f"bad measuring settings: {exc}", "check --min-time/--min-iters/--max-iters") from None
    a = suite.get("android", {})
    cool = CoolingPolicy()
    options = DeviceOptions(
        cpus=_pick(args.cpus, suite, "cpus"),
        ort_ep=args.ep or "cpu",
        adb=args.adb or (Path(a["adb"]) if "adb" in a else None),
        runners={k: v for k, v in {
            "executorch": args.executor_runner or (Path(a["executor_runner"]) if "executor_runner" in a else None),
            "onnx": args.ort_perf_test or (Path(a["ort_perf_test"]) if "ort_perf_test" in a else None),
            "litert": args.benchmark_model or (Path(a["benchmark_model"]) if "benchmark_model" in a else None),
        }.items() if v},
        cooling=CoolingPolicy(
            threshold_c=float(_pick(args.cooldown_c, a, "cooldown_c", cool.threshold_c)),
            max_wait_s=float(_pick(args.cooldown_max_s, a, "cooldown_max_s", cool.max_wait_s)),
            poll_s=float(_pick(args.cooldown_poll_s, a, "cooldown_poll_s", cool.poll_s)),
        ),
        timeout_s=args.case_timeout,
    )
    device_spec = _pick(args.device, suite, "device", DEFAULTS["device"])
    plan = SweepPlan(models=models, targets=targets, resolutions=resolutions, baseline=baseline,
                     quantize=_pick(args.quantize, suite, "quantize", DEFAULTS["quantize"]),
                     passes=_pick(args.passes, suite, "passes", DEFAULTS["passes"]),
                     batch=int(_pick(args.batch, suite, "batch", DEFAULTS["batch"])),
                     threads=_pick(args.threads, suite, "threads", DEFAULTS["threads"]),
                     seed=None if args.no_shuffle else args.seed)
    title = f"mobexport bench: suite {suite['name']}" if suite else "mobexport bench"
    return plan, policy, options, device_spec, title


def store_prepare(store: Path | None):
    """The sweep's prepare step, with ``--artifact-store`` as its export cache when given (picklable)."""
    from functools import partial

    from .artifacts import prepare

    return prepare if store is None else partial(prepare, cache_dir=store)


SUMMARY_NAME, CSV_NAME = "summary.md", "curves.csv"


def derived_outputs(out_dir: Path) -> list[Path]:
    """The files a sweep derives from results.jsonl (and rewrites on every run)."""
    from .plots import PLOT_FILES

    return [out_dir / name for name in (SUMMARY_NAME, CSV_NAME, *PLOT_FILES)]


def earlier_outputs(out_dir: Path) -> dict[Path, float]:
    """Derived files already in ``out_dir`` (an earlier run's), with their modification times."""
    found = {}
    for path in derived_outputs(out_dir):
        try:
            found[path] = path.stat().st_mtime
        except OSError:
            pass
    return found


def describe_replaced(earlier: dict[Path, float], records: int) -> str | None:
    """The line that says which earlier outputs this run replaced (nothing measured is lost: results.jsonl keeps it)."""
    if not earlier:
        return None
    from datetime import datetime

    when = datetime.fromtimestamp(max(earlier.values())).strftime("%Y-%m-%d %H:%M:%S")
    names = ", ".join(sorted(p.name for p in earlier))
    return (f"replaced the earlier run's {names} (written {when}); the new ones cover all {records} record(s) of "
            f"{RESULTS_NAME}, which keeps every earlier measurement")


def baseline_note(rows: list[dict], baseline: str | None) -> str | None:
    """Why the × baseline column is empty, where it is, and how to fill it."""
    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        return None
    if baseline is None:
        return (f"no baseline model, so the × baseline column is empty: add {DEFAULT_BASELINE} to --models, "
                f"or name one of the swept models with --baseline")
    lacking = sorted({f"{r['target']}@{r['resolution']}" for r in ok if r.get("vs_baseline") is None})
    if lacking:
        return (f"the baseline {baseline} has no successful measurement at {', '.join(lacking[:6])}"
                f"{' and more' if len(lacking) > 6 else ''}, so × baseline is empty there: run the sweep again "
                "to retry its failed cases")
    return None


def write_outputs(out_dir: Path, baseline: str | None, title: str, policy: MeasurePolicy,
                  console: Console) -> list[dict]:
    """curves.csv, summary.md and the PNGs from everything in results.jsonl; returns the rows.

    Each file is written to a temporary file beside it, fsynced and renamed
    into place: an interrupted or out-of-space run leaves the previous one.
    """
    from mobexport.benchmarks.results.curves import csv_text, curve_rows
    from .plots import plot_sweep
    from .summary import markdown

    results = out_dir / RESULTS_NAME
    if not results.exists():
        return []
    records = read_records(results)
    rows = curve_rows(records, baseline)
    write_text_durably(out_dir / CSV_NAME, csv_text(rows), "curves table")
    measured = [r for r in records if r.status == "ok"]
    device_info = measured[-1].device_info if measured else (records[-1].device_info if records else {})
    try:
        plots = plot_sweep(rows, out_dir, baseline, title.replace("mobexport bench: ", ""), records=records,
                           device_info=device_info)
    except OSError as exc:  # the PNGs are written atomically: a failed one leaves the previous image
        raise write_failed(out_dir, exc, "plots in") from None
    tools = measured[-1].tool_versions if measured else {}
    text = markdown(rows, baseline, title=title, device_info=device_info, tool_versions=tools,
                    policy=policy.to_dict(), plots=plots)
    note = baseline_note(rows, baseline)
    if note:
        text = text.rstrip("\n") + f"\n\nNote: {note}.\n"
    write_text_durably(out_dir / SUMMARY_NAME, text, "summary")
    return rows


def print_report(console: Console, rows: list[dict], baseline: str | None, out_dir: Path) -> None:
    from mobexport.benchmarks.results.curves import crossovers, setting_key
    from .run import RESULTS_NAME
    from .plots import PLOT_FILES
    from .summary import rich_table

    for setting in sorted({setting_key(r) for r in rows if r["status"] == "ok"}):
        console.print(rich_table(rows, setting))
    if baseline:
        found = [c for c in crossovers([r for r in rows if r["status"] == "ok"], baseline, "latency_median_ms")]
        for c in found:
            console.print(f"[bold]crossover[/] {c.describe()}", highlight=False)
        if not found and any(r["model"] != baseline for r in rows):
            console.print(f"no latency crossover with {baseline} in the measured range", highlight=False)
    failed = [r for r in rows if r["status"] != "ok"]
    for r in failed:
        console.print(f"[red]failed[/] {r['model']}/{r['target']}@{r['resolution']}: {r['error']}", highlight=False)
    console.print(f"wrote {out_dir / RESULTS_NAME}, curves.csv, summary.md and "
                  f"{', '.join(n for n in PLOT_FILES if (out_dir / n).is_file())} in {out_dir}", highlight=False)


@contextmanager
def sigterm_as_interrupt():
    """SIGTERM (a CI timeout, ``kill``) ends the sweep the way Ctrl-C does: the running case's worker is
    stopped, its temporary directory removed, and the finished records are kept.

    The same handler as the CLI's (:func:`mobexport.signals.raise_terminated`), so a SIGTERM exits 143
    whether it lands before the sweep starts or during it, also when a program embeds the sweep."""
    try:
        previous = signal.signal(signal.SIGTERM, signals.raise_terminated)
    except ValueError:  # not the main thread (an embedding application): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _made(out_dir: Path) -> Path:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputDirError(f"cannot create '{out_dir}' ({exc.strerror or exc})", "choose another --out") from None
    return out_dir


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    console = stdout_console()  # wide when piped: one line per table row
    if args.list_suites:
        for name, description in list_suites().items():
            console.print(f"[bold]{name}[/]: {description}", highlight=False)
        return 0
    plan, policy, options, device_spec, title = settings_from(args)
    if args.sustained or args.sustained_bucket:
        from mobexport.devices.android_sustained import parse_duration

        if not args.sustained:
            raise BenchmarkError("--sustained-bucket without --sustained", "add --sustained DURATION, e.g. 10m")
        parse_duration(args.sustained)
        if args.sustained_bucket:
            parse_duration(args.sustained_bucket, "--sustained-bucket")
    if args.export_jobs < 1:
        raise BenchmarkError(f"--export-jobs must be at least 1, not {args.export_jobs}", "pass --export-jobs 1 or more")
    if args.metric == "instructions":
        if args.cluster:
            raise BenchmarkError("--metric instructions counts on this host", "drop --cluster, or time with --metric latency")
        from .instructions import main_instructions

        return main_instructions(plan, device_spec, args.out, args.export_jobs, args.jobs, console)
    from .instructions import refuse_mixing

    refuse_mixing(args.out / RESULTS_NAME, "latency")
    if args.cluster:  # Ray is imported only here
        from ..cluster.bench import run_on_cluster

        return run_on_cluster(args.cluster, plan, policy, options, device_spec, title, args.out, args.artifact_store)
    device = get_device(device_spec, options)
    device.require()
    plan.device = device.name
    # What the device can run is known without torch: refuse a mismatch before plan.validate imports
    # it (an unknown target name is left to validate, which lists the known ones).
    for target in plan.targets:
        if target in WHERE_IT_RUNS:
            device.check_kind(target)
    device.check_batch(plan.batch)
    plan.validate()

    err_console = stderr_console()
    out_dir: Path = args.out
    if args.sustained:
        from .sustained import run_sustained_bench

        with locked_out_dir(_made(out_dir)), sigterm_as_interrupt(), device:
            return run_sustained_bench(plan, policy, device, out_dir, args.sustained, args.sustained_bucket,
                                       console, err_console)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputDirError(f"cannot create '{out_dir}' ({exc.strerror or exc})", "choose another --out") from None
    stopped: MobexportError | None = None
    with locked_out_dir(out_dir), sigterm_as_interrupt():
        earlier = earlier_outputs(out_dir)
        with device:
            try:
                outcome = run_sweep(plan, device, out_dir, policy, console=err_console, export_jobs=args.export_jobs,
                                    prepare_case=store_prepare(args.artifact_store))
            except MobexportError as exc:  # the device went away: keep and report what was finished
                stopped = exc
                outcome = None
            finally:
                rows = write_outputs(out_dir, plan.baseline, title, policy, err_console)
        replaced = describe_replaced(earlier, len(read_records(out_dir / RESULTS_NAME))) if rows else None
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
