"""A real local Ray cluster for the cluster tests: a head and two worker nodes on 127.0.0.1.

Each worker node is a "host" with its own fake-adb world holding one phone
(its environment is fixed when the node starts, as a real host's is), and
advertises that phone as ``mobexport/adb:SERIAL``; the head has no device and
one CPU for exports. The cluster is shut down when the module's tests end.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ..devices.conftest import FAKE_ADB, FakePhones

# Ray resolves 127.0.0.1 to this host's outward address unless told that this is no multi-host setup;
# the cluster is bound to 127.0.0.1, so the driver must connect there.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

PHONE_A, PHONE_B, PHONE_C = "PHONEA01", "PHONEB02", "PHONEC03"


@dataclass
class LocalCluster:
    cluster: object
    address: str
    homes: dict[str, Path]                 # serial -> the fake-adb home of the node that has it
    nodes: dict[str, object]               # serial -> the ray node object
    store: Path
    root: Path
    homes_by_node: dict[str, Path] = field(default_factory=dict)

    def node_id(self, serial: str) -> str:
        return self.nodes[serial].node_id

    def add_phone_node(self, serial: str, home_name: str | None = None, **behaviour) -> object:
        """One more host with one phone; its environment is set while it starts."""
        home = self.root / f"adb-{home_name or serial}"
        FakePhones(home).add(serial, **behaviour)
        with _env(FAKE_ADB_HOME=str(home)):
            node = self.cluster.add_node(num_cpus=0, resources={f"mobexport/adb:{serial}": 1},
                                         node_ip_address="127.0.0.1")
        self.cluster.wait_for_nodes()
        self.homes_by_node[node.node_id] = home
        self.homes.setdefault(serial, home)
        self.nodes.setdefault(serial, node)
        return node


class _env:
    def __init__(self, **values):
        self.values, self.saved = values, {}

    def __enter__(self):
        for key, value in self.values.items():
            self.saved[key] = os.environ.get(key)
            os.environ[key] = value

    def __exit__(self, *exc):
        for key, value in self.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    root = tmp_path_factory.mktemp("cluster")
    bin_dir = root / "adb-bin"
    bin_dir.mkdir()
    (bin_dir / "adb").symlink_to(FAKE_ADB)
    empty_home = root / "adb-head"
    FakePhones(empty_home)
    env = _env(PATH=f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               MOBEXPORT_CACHE_DIR=str(root / "host-cache"), FAKE_ADB_HOME=str(empty_home))
    env.__enter__()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False, "node_ip_address": "127.0.0.1",
        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 4},
    })
    local = LocalCluster(cluster, cluster.address, {}, {}, root / "store", root)
    try:
        local.add_phone_node(PHONE_A)
        local.add_phone_node(PHONE_B)
        yield local
    finally:
        import ray

        ray.shutdown()
        cluster.shutdown()
        env.__exit__()
