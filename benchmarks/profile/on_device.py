"""``mobexport profile --device adb[:SERIAL]``: the per-op profile of each model measured on a phone.

Each model is exported here exactly as the host profile exports it (static,
``--resolution``, ``--passes``; ExecuTorch with XNNPACK), pushed, run once
under the runner's own profiler and read back (``benchmarks/profile/on_phone.py``);
the table and stacked bars are the host profiler's.
"""

from __future__ import annotations

from pathlib import Path

from mobexport.devices.registry import DeviceOptions, get_device
from mobexport.errors import DeviceError


def device_profiles(args, work: Path) -> list[dict]:
    from mobexport.config import ExportConfig
    from mobexport.devices.android import AndroidDevice
    from .on_phone import profile_on_device
    from .ops import PROFILE_EXPORT_OPTIONS
    from mobexport.export.pipeline import export_model

    runners = {"executorch": args.executor_runner, "onnx": args.ort_perf_test}
    device = get_device(args.device, DeviceOptions(adb=args.adb, runners={k: v for k, v in runners.items() if v}))
    if not isinstance(device, AndroidDevice):
        raise DeviceError(f"--device {args.device}: per-op profiles run on this host or on a phone",
                          "leave --device out for this host, or use --device adb[:SERIAL]")
    device.require()
    device.check_kind(args.target)                  # the runner binary, before any export
    profiles = []
    with device:
        for model in args.models:
            options = PROFILE_EXPORT_OPTIONS.get(args.target, {})
            artifact = export_model(ExportConfig(model=model, target=args.target, resolution=args.resolution,
                                                 dynamic=False, passes=args.passes, out_dir=work / "artifacts",
                                                 parity_samples=2, target_options=options))
            etrecord = artifact.path.parent / "etrecord.bin"
            profile = profile_on_device(device, args.target, artifact.path, model, args.resolution, args.runs,
                                        args.threads, etrecord if etrecord.is_file() else None)
            profile.update(passes=args.passes, macs=artifact.manifest.macs.get("total_macs"))
            profiles.append(profile)
    return profiles
