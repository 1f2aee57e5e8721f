"""Devices as Ray custom resources: ``mobexport/<device>`` with amount 1.

A phone is named by its serial (``adb:R58M123``), which is the same from
every host; a host's CPU or GPU by the host's name (``local:build-01``,
``cuda:gpu-02``), since "local" differs from host to host. Amount 1 is what
makes a device exclusive: Ray never runs two tasks needing it at once.
"""

from __future__ import annotations

import json
import shlex
import socket

from mobexport.errors import DeviceError

from .connection import RESOURCE_PREFIX, ClusterError

# Per-host devices: the cluster name carries the host, the node builds the plain device.
HOST_DEVICES = ("local", "cuda")


def resource_name(device: str) -> str:
    return RESOURCE_PREFIX + device


def host_name() -> str:
    return socket.gethostname()


def cluster_device_name(device_name: str, host: str | None = None) -> str:
    """This host's device name as the cluster knows it: ``local`` -> ``local:HOST``; phones keep theirs."""
    return f"{device_name}:{host or host_name()}" if device_name in HOST_DEVICES else device_name


def node_device_spec(cluster_name: str) -> str:
    """What ``get_device`` gets on the node: ``local:HOST`` -> ``local``; ``adb:SERIAL`` stays."""
    kind, _, _ = cluster_name.partition(":")
    return kind if kind in HOST_DEVICES else cluster_name


def parse_cluster_devices(spec: str) -> list[str]:
    """``--device`` in a cluster sweep: a comma list of devices, each naming its host or serial."""
    devices = [d.strip() for d in spec.split(",") if d.strip()]
    if not devices:
        raise ClusterError("--device names no device", "e.g. --device adb:R58M123,local:build-01")
    for device in devices:
        kind, _, arg = device.partition(":")
        if kind in HOST_DEVICES and not arg:
            raise ClusterError(f"--device {device} with --cluster: every host has one",
                               f"name the host, e.g. --device {kind}:{host_name()} "
                               "(see 'mobexport devices --cluster ADDRESS')")
        if kind == "adb" and not arg:
            raise ClusterError("--device adb with --cluster: name the phone",
                               "e.g. --device adb:SERIAL (see 'mobexport devices --cluster ADDRESS')")
        if kind not in (*HOST_DEVICES, "adb"):
            raise ClusterError(f"--device {device} cannot be used with --cluster",
                               "use adb:SERIAL, local:HOST or cuda:HOST")
    if len(set(devices)) != len(devices):
        raise ClusterError(f"--device {spec} names a device twice", "name each device once")
    return devices


def device_kinds(cluster_name: str) -> tuple[str, ...]:
    """The artifact kinds a device of this name runs, known without reaching it."""
    from mobexport.devices.android import AndroidDevice
    from mobexport.devices.cuda import CudaDevice
    from mobexport.devices.local import LocalDevice

    kind = cluster_name.partition(":")[0]
    return {"local": LocalDevice.kinds, "cuda": CudaDevice.kinds, "adb": AndroidDevice.kinds}[kind]


def check_targets(devices: list[str], targets: list[str]) -> None:
    """Refuse a target a device cannot run, before anything is exported."""
    from mobexport.devices.device import WHERE_IT_RUNS

    for device in devices:
        kinds = device_kinds(device)
        for target in targets:
            if target in WHERE_IT_RUNS and target not in kinds:
                raise DeviceError(f"{target} artifacts cannot run on device '{device}' (it runs {', '.join(kinds)})",
                                  WHERE_IT_RUNS[target])


def host_resources(rows) -> dict[str, float]:
    """The custom resources of this host's available devices (rows of ``devices.registry.survey``)."""
    resources = {}
    for row in rows:
        if not row.available:
            continue
        name = row.name if row.name.startswith("adb:") else cluster_device_name(row.name)
        if name.partition(":")[0] in (*HOST_DEVICES, "adb"):
            resources[resource_name(name)] = 1.0
    return resources


def ray_start_line(resources: dict[str, float], address: str | None = None) -> str:
    """The ``ray start`` command that joins this host with its devices advertised."""
    where = f"--address {shlex.quote(address)}" if address else "--address HEAD_HOST:6379"
    amounts = {name: int(amount) if float(amount).is_integer() else amount for name, amount in resources.items()}
    return f"ray start {where} --resources {shlex.quote(json.dumps(amounts, sort_keys=True))}"
