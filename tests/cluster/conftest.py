"""A real local Ray cluster for the cluster tests: a head and two worker nodes on 127.0.0.1.

Each worker node is a "host" with its own private adb server (its own
``ANDROID_ADB_SERVER_PORT`` and HOME, in the environment while the node
starts, as a real host's is) and one emulated phone (``tests/devices/adbd``)
attached to that server with ``adb connect 127.0.0.1:PORT``, as a phone over
Wi-Fi adb is; the node advertises it as ``mobexport/adb:127.0.0.1:PORT``. The
runners the harness pushes are fake ELFs (the emulated phone runs host-side
stand-ins), named by ``MOBEXPORT_*`` variables as on a real host. The head has
no phone (its own empty adb server) and one CPU for exports. The cluster, every
adb server and every emulator are shut down when the module's tests end.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ..devices.adbd import AdbdEmulator, PhoneSpec
from ..devices.conftest import ADB, _free_port, runner_binaries

# Ray resolves 127.0.0.1 to this host's outward address unless told that this is no multi-host setup;
# the cluster is bound to 127.0.0.1, so the driver must connect there.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

RUNNER_VARS = {"executorch": "MOBEXPORT_EXECUTOR_RUNNER", "onnx": "MOBEXPORT_ORT_PERF_TEST",
               "litert": "MOBEXPORT_BENCHMARK_MODEL"}


@dataclass
class Host:
    """One machine of the cluster as adb sees it: a private adb server, and the Ray node started with it."""

    port: int                       # its adb server's ANDROID_ADB_SERVER_PORT
    home: Path                      # HOME of that server (its keys, nothing real)
    phone: AdbdEmulator | None = None
    node: object = None

    @property
    def env(self) -> dict[str, str]:
        return {"ANDROID_ADB_SERVER_PORT": str(self.port), "HOME": str(self.home)}

    def adb(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([ADB, *args], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                              env={**os.environ, **self.env})

    def kill_server(self) -> None:
        try:
            self.adb("kill-server")
        except (OSError, subprocess.SubprocessError):
            pass


@dataclass
class LocalCluster:
    cluster: object
    address: str
    store: Path
    root: Path
    runners: dict[str, Path]
    head: Host
    client_address: str                    # ray://127.0.0.1:PORT, the head's Ray client server
    phones: dict[str, AdbdEmulator] = field(default_factory=dict)   # name ("A") -> its emulator
    hosts: dict[str, Host] = field(default_factory=dict)            # serial -> the first host that has it
    all_hosts: list[Host] = field(default_factory=list)
    emulators: list[AdbdEmulator] = field(default_factory=list)

    def serial(self, name: str) -> str:
        return self.phones[name].serial

    def device(self, name: str) -> str:
        return f"adb:{self.serial(name)}"

    def node_id(self, serial: str) -> str:
        return self.hosts[serial].node.node_id

    def new_phone(self, name: str, spec: PhoneSpec | None = None) -> AdbdEmulator:
        emulator = AdbdEmulator(self.root / f"phone-{name}", spec).start()
        self.emulators.append(emulator)
        self.phones[name] = emulator
        return emulator

    def add_phone_node(self, name: str, spec: PhoneSpec | None = None) -> Host:
        """One more host with phone ``name`` (started from ``spec`` unless it exists: then shared by both hosts)."""
        phone = self.phones.get(name) or self.new_phone(name, spec)
        home = self.root / f"host{len(self.all_hosts)}"
        home.mkdir()
        host = Host(_free_port(), home, phone)
        self.all_hosts.append(host)
        out = host.adb("connect", phone.serial)                      # starts this host's adb server
        assert f"connected to {phone.serial}" in out.stdout, out
        with _env(**host.env):
            host.node = self.cluster.add_node(num_cpus=0, resources={f"mobexport/adb:{phone.serial}": 1},
                                              node_ip_address="127.0.0.1")
        self.cluster.wait_for_nodes()
        self.hosts.setdefault(phone.serial, host)
        return host

    def kill_host(self, host: Host) -> None:
        """The host dies: its Ray node (not gracefully) and its adb server with it."""
        self.cluster.remove_node(host.node, allow_graceful=False)
        host.kill_server()


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
    if ADB is None:
        pytest.skip("the adb client is not installed (apt-get install adb)")
    from ray.cluster_utils import Cluster

    root = tmp_path_factory.mktemp("cluster")
    runners = runner_binaries(root / "runners")
    head_home = root / "head"
    head_home.mkdir()
    head = Host(_free_port(), head_home)
    # Each host's HOME is private (its adb keys), so it holds no Ray token: this 127.0.0.1-only test cluster runs
    # without Ray's token authentication rather than one that every host would have to be handed.
    env = _env(MOBEXPORT_CACHE_DIR=str(root / "host-cache"), RAY_AUTH_MODE="disabled", **head.env,
               **{var: str(runners[kind]) for kind, var in RUNNER_VARS.items()})
    saved_serial = os.environ.pop("ANDROID_SERIAL", None)
    env.__enter__()
    local = None
    try:
        client_port = _free_port()
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 1, "include_dashboard": False, "node_ip_address": "127.0.0.1",
            "ray_client_server_port": client_port,
            "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 4},
        })
        local = LocalCluster(cluster, cluster.address, root / "store", root, runners, head,
                             f"ray://127.0.0.1:{client_port}")
        try:
            local.add_phone_node("A")
            local.add_phone_node("B")
            yield local
        finally:
            import ray

            ray.shutdown()
            cluster.shutdown()
    finally:
        for host in [head, *(local.all_hosts if local else [])]:
            host.kill_server()
        for emulator in local.emulators if local else []:
            emulator.stop()
        env.__exit__()
        if saved_serial is not None:
            os.environ["ANDROID_SERIAL"] = saved_serial
