"""``mobexport cluster node`` and the cluster views of ``mobexport devices``.

``mobexport cluster node --address HEAD:PORT`` joins this host to a Ray
cluster with ``ray start``, advertising each available device as a custom
resource (``mobexport/adb:SERIAL``, ``mobexport/local:HOST``...), and
publishes the devices' fingerprints in the cluster's key-value store so that
``mobexport devices --cluster ADDRESS`` can show what each one is without
disturbing a sweep that is using it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from rich.table import Table

from mobexport.consoles import stdout_console
from mobexport.options import ArgumentParser, add_verbosity_options, existing_file

from .connection import RESOURCE_PREFIX, ClusterError, connect, parse_cluster
from .resources import host_resources, host_name, ray_start_line

KV_NAMESPACE = "mobexport"


def _survey(adb: Path | None):
    from mobexport.devices.registry import DeviceOptions, survey

    return survey(DeviceOptions(adb=adb))


def fingerprints(rows) -> dict[str, dict]:
    """Cluster device name -> the device's fingerprint, for this host's available devices."""
    from .resources import cluster_device_name

    return {(row.name if row.name.startswith("adb:") else cluster_device_name(row.name)): row.info
            for row in rows if row.available}


def publish(devices: dict[str, dict]) -> str:
    """Write this node's device fingerprints to the cluster's key-value store; returns the node id."""
    import ray
    from ray.experimental import internal_kv

    node_id = ray.get_runtime_context().get_node_id()
    value = json.dumps({"host": host_name(), "devices": devices}, sort_keys=True, default=str)
    internal_kv._internal_kv_put(f"devices/{node_id}".encode(), value.encode(), overwrite=True,
                                 namespace=KV_NAMESPACE)
    return node_id


def published() -> dict[str, dict]:
    """Node id -> what that node published (host, devices' fingerprints)."""
    from ray.experimental import internal_kv

    found = {}
    for key in internal_kv._internal_kv_list(b"devices/", namespace=KV_NAMESPACE):
        raw = internal_kv._internal_kv_get(key, namespace=KV_NAMESPACE)
        try:
            found[key.decode().split("/", 1)[1]] = json.loads(raw)
        except (ValueError, TypeError, AttributeError):
            continue
    return found


def cluster_rows() -> list[dict]:
    """One row per device advertised by a live node: device, node, host, fingerprint."""
    import ray

    notes = published()
    rows = []
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        node_id = node["NodeID"]
        for name, amount in sorted((node.get("Resources") or {}).items()):
            if not name.startswith(RESOURCE_PREFIX) or amount <= 0:
                continue
            device = name[len(RESOURCE_PREFIX):]
            info = notes.get(node_id, {}).get("devices", {}).get(device)
            rows.append({"device": device, "resource": name, "node_id": node_id,
                         "host": node.get("NodeManagerHostname"), "address": node.get("NodeManagerAddress"),
                         "info": info or {}})
    return rows


def print_ray_resources(adb: Path | None, as_json: bool) -> int:
    """``mobexport devices --ray-resources``: the ``ray start`` line advertising this host's devices."""
    resources = host_resources(_survey(adb))
    console = stdout_console()
    if as_json:
        console.print_json(json.dumps(resources))
        return 0
    if not resources:
        raise ClusterError("no device is available on this host", "see 'mobexport devices' for why")
    print(ray_start_line(resources))
    return 0


def print_cluster_devices(address: str, as_json: bool) -> int:
    """``mobexport devices --cluster ADDRESS``: every device of the cluster, with the node that has it."""
    import ray

    from mobexport.devices.registry import summarize_info

    connect(address)
    try:
        rows = cluster_rows()
    finally:
        ray.shutdown()
    console = stdout_console()
    if as_json:
        console.print_json(json.dumps(rows, default=str))
        return 0
    table = Table(title=f"devices of the cluster at {address}", title_justify="left")
    for column in ("device", "host", "node", "details"):
        table.add_column(column, style="bold" if column == "device" else None)
    for r in rows:
        detail = summarize_info(r["info"]) if r["info"] else "(no fingerprint published: joined without " \
                                                              "'mobexport cluster node')"
        table.add_row(r["device"], str(r["host"]), r["node_id"][:12], detail)
    console.print(table)
    return 0


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="mobexport cluster",
                       description="Join this host to a Ray cluster with its devices advertised as resources.",
                       epilog="example: mobexport cluster node --address 10.0.0.5:6379\n"
                              "See docs/benchmarking.md, 'Many hosts'.",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True, metavar="node")
    node = sub.add_parser("node", help="start a Ray node here advertising this host's devices")
    where = node.add_mutually_exclusive_group(required=True)
    where.add_argument("--address", help="the head's address HOST:PORT (what 'ray start --head' printed)")
    where.add_argument("--head", action="store_true", help="start the head node here")
    node.add_argument("--adb", type=existing_file, help="adb executable (default: 'adb' on PATH)")
    node.add_argument("--num-cpus", type=int, help="CPUs this node offers for exports (default: Ray's: all)")
    node.add_argument("--dry-run", action="store_true", help="print the 'ray start' command and do nothing")
    add_verbosity_options(p)
    return p


def start_command(resources: dict[str, float], address: str | None, num_cpus: int | None) -> list[str]:
    ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray") or "ray"
    command = [ray_cli, "start", "--head"] if address is None else [ray_cli, "start", "--address", address]
    command += ["--resources", json.dumps({name: int(amount) for name, amount in resources.items()}, sort_keys=True)]
    if num_cpus is not None:
        command += ["--num-cpus", str(num_cpus)]
    return command


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    rows = _survey(args.adb)
    resources = host_resources(rows)
    if args.address:
        parse_cluster(args.address)  # a malformed address is refused before anything starts
    command = start_command(resources, args.address, args.num_cpus)
    if args.dry_run:
        print(shlex.join(command))
        return 0
    if args.address:
        from .connection import check_reachable

        check_reachable(parse_cluster(args.address))
    done = subprocess.run(command)
    if done.returncode != 0:
        raise ClusterError(f"'ray start' failed with status {done.returncode}", "see its output above")
    connect(args.address or "ray")
    import ray

    try:
        node_id = publish(fingerprints(rows))
    finally:
        ray.shutdown()
    names = ", ".join(sorted(r[len(RESOURCE_PREFIX):] for r in resources)) or "no devices"
    print(f"node {node_id[:12]} joined with {names}")
    return 0
