"""The cluster command line without a cluster: address parsing, device names, the 'ray start' lines."""

from __future__ import annotations

import json
import shlex
import shutil

import pytest

from mobexport.benchmarks.cluster.connection import ClusterError, advertised_devices, parse_cluster
from mobexport.benchmarks.cluster.resources import host_name, node_device_spec, parse_cluster_devices
from mobexport.cli import main


@pytest.mark.parametrize("spec, address, client", [
    ("ray", None, False),
    ("ray://10.0.0.5:10001", "ray://10.0.0.5:10001", True),
    ("10.0.0.5:6379", "10.0.0.5:6379", False),
])
def test_cluster_addresses(spec, address, client):
    where = parse_cluster(spec)
    assert where.address == address and where.client is client


@pytest.mark.parametrize("spec", ["10.0.0.5", "ray://host", "host:99999", "http://x:1", ""])
def test_bad_cluster_addresses(spec):
    with pytest.raises(ClusterError, match="is not a cluster address"):
        parse_cluster(spec)


def test_device_names_in_a_cluster():
    assert parse_cluster_devices("adb:R58,local:build-01") == ["adb:R58", "local:build-01"]
    assert node_device_spec("local:build-01") == "local" and node_device_spec("adb:R58") == "adb:R58"
    for bad, message in (("adb", "name the phone"), ("local", "name the host"), ("macos:ALL", "cannot be used"),
                         ("adb:A,adb:A", "twice")):
        with pytest.raises(ClusterError, match=message):
            parse_cluster_devices(bad)


def test_advertised_devices_ignore_other_resources():
    nodes = {"n1": {"CPU": 2.0, "mobexport/adb:A": 1.0, "memory": 1e9}, "n2": {"mobexport/adb:A": 1.0},
             "n3": {"mobexport/local:h3": 1.0, "GPU": 1.0}}
    assert advertised_devices(nodes) == {"adb:A": ["n1", "n2"], "local:h3": ["n3"]}


def test_cluster_node_dry_run_prints_the_ray_start_command(capsys):
    assert main(["cluster", "node", "--head", "--dry-run", "--num-cpus", "2"]) == 0
    argv = shlex.split(capsys.readouterr().out)
    assert argv[1:3] == ["start", "--head"] and argv[-2:] == ["--num-cpus", "2"]
    assert json.loads(argv[argv.index("--resources") + 1])[f"mobexport/local:{host_name()}"] == 1


def test_cluster_node_refuses_a_bad_address(capsys):
    assert main(["cluster", "node", "--address", "nowhere"]) == 2
    assert "is not a cluster address" in capsys.readouterr().err


LOCAL_CLUSTER = """
import json, ray
from mobexport.benchmarks.cluster.connection import advertised_devices, connect
connect("ray", lambda: {"mobexport/local:testhost": 1})
try:
    print(json.dumps({"advertised": advertised_devices(), "node": ray.get_runtime_context().get_node_id()}))
finally:
    ray.shutdown()
"""


@pytest.mark.slow
def test_cluster_ray_starts_a_local_cluster_with_this_hosts_devices(tmp_path):
    """'--cluster ray' with no cluster to attach to starts one here, advertising this host's devices.

    In its own process with its own HOME, as a user's run is: a local ``ray.init`` turns on Ray's token
    authentication for the rest of its process and writes a token under ``~/.ray``.
    """
    pytest.importorskip("ray")
    import os
    import subprocess
    import sys
    import tempfile

    short = tempfile.mkdtemp(prefix="mxr", dir="/tmp")         # Ray's socket paths must stay under 108 bytes
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(tmp_path), RAY_TMPDIR=short,           # no earlier cluster's address file to attach to
               RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    try:
        done = subprocess.run([sys.executable, "-c", LOCAL_CLUSTER], capture_output=True, text=True, env=env,
                              timeout=180)
    finally:
        shutil.rmtree(short, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["advertised"] == {"local:testhost": [seen["node"]]}
