"""Device names as users write them, and what each one is.

``local``, ``cuda``, ``adb`` / ``adb:SERIAL``, ``macos`` / ``macos:UNITS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mobexport.errors import DeviceError

from .android import AndroidDevice, CoolingPolicy, choose_device
from .cuda import CudaDevice
from .device import Availability, Device
from .local import DEFAULT_CASE_TIMEOUT_S, LocalDevice
from .macos import MacDevice

DEVICE_SPECS = ("local", "cuda", "adb[:SERIAL]", "macos[:CPU_ONLY|CPU_AND_GPU|CPU_AND_NE|ALL]")


@dataclass
class DeviceOptions:
    """Settings a device may need, as the CLI gathers them."""

    cpus: list[int] | None = None
    adb: Path | None = None
    runners: dict[str, Path] = field(default_factory=dict)
    cooling: CoolingPolicy = field(default_factory=CoolingPolicy)
    timeout_s: float = DEFAULT_CASE_TIMEOUT_S
    ort_ep: str = "cpu"            # adb: onnxruntime_perf_test's execution provider (-e)


def get_device(spec: str, options: DeviceOptions | None = None) -> Device:
    """The device named ``spec``; a one-line error for a name that is not one."""
    options = options or DeviceOptions()
    kind, _, arg = spec.partition(":")
    if options.cpus and kind not in ("local", "cuda"):
        raise DeviceError(f"--cpus applies to this host only, not to '{spec}'",
                          "on a phone the big cores are found and pinned automatically")
    if options.ort_ep != "cpu" and kind != "adb":
        raise DeviceError(f"--ep {options.ort_ep} chooses onnxruntime_perf_test's execution provider on a phone, "
                          f"not on '{spec}'", "use it with --device adb[:SERIAL]")
    if kind == "local" and not arg:
        return LocalDevice(cpus=options.cpus, timeout_s=options.timeout_s)
    if kind == "cuda" and not arg:
        return CudaDevice(cpus=options.cpus, timeout_s=options.timeout_s)
    if kind == "adb":
        return AndroidDevice(serial=arg or None, adb=options.adb, runners=options.runners,
                             cooling=options.cooling, timeout_s=options.timeout_s, ort_ep=options.ort_ep)
    if kind == "macos":
        return MacDevice(arg or "ALL", timeout_s=options.timeout_s)
    raise DeviceError(f"unknown device '{spec}'", f"choose one of: {', '.join(DEVICE_SPECS)}")


@dataclass
class DeviceRow:
    """One line of 'mobexport devices'."""

    name: str
    available: bool
    detail: str
    runs: tuple[str, ...]
    info: dict = field(default_factory=dict)


def _row(device: Device) -> DeviceRow:
    state = device.availability()
    if not state.ok:
        return DeviceRow(device.name, False, state.reason, device.kinds)
    try:
        info = device.info()
    except DeviceError as exc:
        return DeviceRow(device.name, False, exc.one_line(), device.kinds)
    return DeviceRow(device.name, True, summarize_info(info), device.kinds, info)


def survey(options: DeviceOptions | None = None) -> list[DeviceRow]:
    """Every device kind: what is usable here, and why the rest is not."""
    options = options or DeviceOptions()
    rows = [_row(LocalDevice()), _row(CudaDevice())]
    rows.extend(android_rows(options))
    rows.append(_row(MacDevice()))
    return rows


def android_rows(options: DeviceOptions) -> list[DeviceRow]:
    from .adb_client import Adb, find_adb

    kinds = AndroidDevice.kinds
    try:
        attached = Adb(find_adb(options.adb)).devices()
    except DeviceError as exc:
        return [DeviceRow("adb", False, exc.one_line(), kinds)]
    if not attached:
        return [DeviceRow("adb", False, "no Android device attached (connect one with USB debugging on)", kinds)]
    rows = []
    for entry in attached:
        device = AndroidDevice(serial=entry.serial, adb=options.adb, runners=options.runners)
        try:
            choose_device(attached, entry.serial)
        except DeviceError as exc:
            rows.append(DeviceRow(device.name, False, exc.one_line(), kinds))
            continue
        rows.append(_row(device))
    return rows


def summarize_info(info: dict) -> str:
    if "soc" in info:  # a phone
        return (f"{info.get('manufacturer') or ''} {info.get('model') or ''}, {info['soc']}, {info.get('abi')}, "
                f"Android {info.get('android')}, {info.get('cores')} cores (big {info.get('big_cores')})").strip()
    parts = [str(info.get("cpu")), f"{info.get('cores')} cores", str(info.get("os"))]
    if "gpu" in info:
        parts.insert(0, f"{info['gpu']} (driver {info.get('driver')})")
    return ", ".join(parts)


__all__ = ["Availability", "DeviceOptions", "DeviceRow", "get_device", "survey"]
