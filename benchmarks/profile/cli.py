"""``mobexport profile``: its options, and one process per model (see :mod:`.ops` for what is measured)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from . import ops


def _run_isolated(args: argparse.Namespace, model: str, work: Path) -> dict:
    """``profile_model`` in a fresh interpreter; its result comes back as JSON."""
    result = work / f"{model}.json"
    from mobexport import logs

    code = (f"from mobexport import logs; logs.setup({logs.current_verbosity()}); "  # the child's noise obeys -v too
            "import json, sys; from pathlib import Path; from mobexport.benchmarks.profile.ops import profile_model; "
            f"r = profile_model({model!r}, {args.resolution}, {args.passes!r}, {args.runs}, {args.warmup}, "
            f"{args.threads}, Path({str(work)!r}), {args.target!r}); Path({str(result)!r}).write_text(json.dumps(r))")
    subprocess.run([sys.executable, "-c", code], check=True)
    return json.loads(result.read_text())


def parser() -> argparse.ArgumentParser:
    """``mobexport profile`` (also ``python -m mobexport.benchmarks.profile``)."""
    from mobexport.options import (ArgumentParser, add_verbosity_options, csv_of, existing_file, nonneg_int,
                                   positive_int, writable_dir)

    p = ArgumentParser(prog="mobexport profile", description=ops.__doc__.splitlines()[0],
                       epilog="example: mobexport profile --models mobile_former_294m,mobilenet_v3_large_100 "
                              "--resolution 224 --out op-profile\n"
                              "Profiled times include the profiler's per-node overhead; compare models with each "
                              "other, not with unprofiled latency.",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=csv_of(str), default=["mobile_former_294m", "mobilenet_v3_large_100"],
                   metavar="M1,M2", help="comma-separated zoo models, profiled side by side "
                                         "(default: mobile_former_294m,mobilenet_v3_large_100)")
    p.add_argument("--resolution", type=positive_int, default=224, help="static input size (default: 224)")
    p.add_argument("--passes", default="default", help="graph passes, as for export (default: default)")
    p.add_argument("--runs", type=positive_int, default=50, help="profiled runs per model (default: 50)")
    p.add_argument("--warmup", type=nonneg_int, default=10, help="runs before profiling, dropped (default: 10)")
    p.add_argument("--threads", type=positive_int, default=1, help="runtime intra-op threads (default: 1)")
    p.add_argument("--target", choices=sorted(ops.RUNTIMES), default="onnx",
                   help="onnx: ONNX Runtime's profiler; executorch: ETDump of the XNNPACK program (default: onnx)")
    p.add_argument("--device", default="local",
                   help="local (this host, default) or adb[:SERIAL]: run the runner's own profiler on a phone")
    p.add_argument("--adb", type=existing_file, help="adb executable (default: the first 'adb' on PATH)")
    p.add_argument("--executor-runner", type=existing_file, help="executor_runner built with the event tracer")
    p.add_argument("--ort-perf-test", type=existing_file, help="onnxruntime_perf_test for the phone")
    p.add_argument("--out", type=writable_dir, default=Path("op-profile"),
                   help="where profile.json and op_time.png go (default: ./op-profile)")
    add_verbosity_options(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    from mobexport.consoles import stdout_console

    console = stdout_console()
    with tempfile.TemporaryDirectory() as tmp:
        if args.device != "local":
            from .on_device import device_profiles

            profiles = device_profiles(args, Path(tmp))
        else:
            profiles = [_run_isolated(args, m, Path(tmp)) for m in args.models]
    from mobexport.devices.local import LocalDevice

    device = LocalDevice().info() if args.device == "local" else None
    for prof in profiles:
        prof.pop("trace", None)
        prof.setdefault("device", device)
    (args.out / "profile.json").write_text(json.dumps(profiles, indent=2))
    ops.print_tables(profiles, console)
    console.print(f"wrote {args.out / 'profile.json'} and {ops.plot(profiles, args.out / 'op_time.png')}")
    return 0

