"""bench --cluster on a real local Ray cluster: two emulated phones on two nodes, one real ONNX export.

Checked: each case ran on the node that has its phone; one phone never times
two cases at once; the records are the local run's (fields, not timings); an
export is done once and reused (by both phones, by a later run, by a local
run sharing the store); a resumed sweep skips what finished; a node killed
mid-sweep loses no finished case and its cases are reported as lost; bad
input is one line before any export. Ray is not imported without --cluster.
The phones are adbd emulators behind each host's own adb server, with network
serials (``adb:127.0.0.1:PORT``, as over Wi-Fi adb). The cluster starts once
per module (about 25 s here); the node-killing and later-run cases are marked slow.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mobexport.cli import main as mobexport_main

from ..devices.adbd import PhoneSpec

MODEL = "mobilenet_v3_small_075"
QUICK = ["--min-time", "0.02", "--min-iters", "5", "--max-iters", "20", "--warmup-time", "0"]
TIMING = {"latency_ms", "samples_ms", "throughput_ips", "init_ms", "peak_memory_bytes", "warmup", "iters", "timestamp"}


def bench(capsys, *argv: str) -> tuple[int, str, str]:
    status = mobexport_main(["bench", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def sweep_args(cluster, out: Path, store: Path, devices: str, resolutions: str = "96") -> list[str]:
    return ["--models", MODEL, "--targets", "onnx", "--resolutions", resolutions, "--device", devices,
            "--ort-perf-test", str(cluster.runners["onnx"]), *QUICK, "--artifact-store", str(store),
            "--out", str(out)]


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def store_entries(store: Path) -> list[Path]:
    return sorted(p for p in store.glob("*/*") if p.is_dir()) if store.exists() else []


def one_line_error(status: int, err: str, *fragments: str) -> None:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def exported(ray_cluster, tmp_path):
    """The store holds the sweep's one export: test_sweep_over_two_phones_on_two_nodes made it, or it is made here."""
    if not store_entries(ray_cluster.store):
        from mobexport.benchmarks.sweep.artifacts import prepare
        from mobexport.benchmarks.results.records import CaseKey

        prepare(CaseKey(model=MODEL, target="onnx", resolution=96), tmp_path / "export", cache_dir=ray_cluster.store)
    assert len(store_entries(ray_cluster.store)) == 1


def test_bad_cluster_input_is_one_line_before_any_export(ray_cluster, capsys, tmp_path):
    out, store = tmp_path / "out", tmp_path / "store"
    status, _, err = bench(capsys, *sweep_args(ray_cluster, out, store, f"adb:{ray_cluster.serial('A')}"), "--cluster", "127.0.0.1:1")
    one_line_error(status, err, "cannot reach the Ray cluster at 127.0.0.1:1")
    status, _, err = bench(capsys, *sweep_args(ray_cluster, out, store, f"adb:{ray_cluster.serial('A')},adb:NOSUCH"), "--cluster",
                           ray_cluster.address)
    one_line_error(status, err, "advertises device 'adb:NOSUCH'", f"adb:{ray_cluster.serial('A')}", f"adb:{ray_cluster.serial('B')}")
    status, _, err = bench(capsys, *sweep_args(ray_cluster, out, store, "local"), "--cluster", ray_cluster.address)
    one_line_error(status, err, "--device local with --cluster", "local:")
    status, _, err = bench(capsys, *sweep_args(ray_cluster, out, store, f"adb:{ray_cluster.serial('A')}"), "--cluster", "not an address")
    one_line_error(status, err, "is not a cluster address")
    assert not store_entries(store) and not (out / "results.jsonl").exists() and not (out / "artifacts").exists()


def test_sweep_over_two_phones_on_two_nodes(ray_cluster, capsys, tmp_path, monkeypatch):
    out, store = tmp_path / "cluster-out", ray_cluster.store
    devices = f"adb:{ray_cluster.serial('A')},adb:{ray_cluster.serial('B')}"
    status, stdout, err = bench(capsys, *sweep_args(ray_cluster, out, store, devices), "--cluster", ray_cluster.address)
    assert status == 0, err
    got = records(out)
    assert len(got) == 2 and all(r["status"] == "ok" for r in got)
    for r in got:  # each case ran on the node that has its phone
        serial = r["case"]["device"].split(":", 1)[1]
        assert r["conditions"]["cluster"]["node_id"] == ray_cluster.node_id(serial)
        assert r["device_info"]["name"] == r["case"]["device"]
    # one export, content-addressed, shared by both phones; the driver's OUT holds it as a local run's would
    assert len(store_entries(store)) == 1 and len({r["artifact"]["sha256"] for r in got}) == 1
    assert "exported in" in err and not any(r["conditions"]["artifact_reused"] for r in got)
    assert all(Path(r["artifact"]["path"]).is_file() and str(out) in r["artifact"]["path"] for r in got)
    for name in ("curves.csv", "summary.md"):
        assert (out / name).is_file()

    # resumed: nothing left to do, nothing appended
    status, _, err = bench(capsys, *sweep_args(ray_cluster, out, store, devices), "--cluster", ray_cluster.address)
    assert status == 0 and "2 case(s) already in" in err and len(records(out)) == 2

    # the same sweep on phone A without the cluster: the same records, the export reused from the store
    for var, value in ray_cluster.hosts[ray_cluster.serial("A")].env.items():   # phone A's host's adb server
        monkeypatch.setenv(var, value)
    local_out = tmp_path / "local-out"
    status, _, err = bench(capsys, *sweep_args(ray_cluster, local_out, store, f"adb:{ray_cluster.serial('A')}"))
    assert status == 0, err
    local = {(r["case"]["resolution"]): r for r in records(local_out)}
    assert len(store_entries(store)) == 1 and all(r["conditions"]["artifact_reused"] for r in local.values())
    for r in got:
        if r["case"]["device"] != f"adb:{ray_cluster.serial('A')}":
            continue
        twin = local[r["case"]["resolution"]]
        assert set(r) == set(twin)
        for key in set(r) - TIMING - {"conditions", "artifact"}:
            assert r[key] == twin[key], key
        assert {k: v for k, v in r["artifact"].items() if k not in ("path", "manifest")} == \
            {k: v for k, v in twin["artifact"].items() if k not in ("path", "manifest")}
        assert set(r["conditions"]) - {"cluster"} == set(twin["conditions"])
        assert r["conditions"]["policy"] == twin["conditions"]["policy"]


@pytest.mark.slow
def test_a_sweep_through_the_ray_client(ray_cluster, exported, capsys, tmp_path):
    """--cluster ray://HOST:PORT: the driver is a Ray client (grpcio), not a cluster node; the same records.

    Slow: the head's Ray client server failed to initialize once in a CI rehearsal on a loaded host
    ("Initialization failure from server"), after passing in the one before; kept out of the default run.
    """
    pytest.importorskip("grpc", reason="the Ray client needs grpcio: pip install 'mobexport[cluster]'")
    out = tmp_path / "client-out"
    device = ray_cluster.device("B")
    try:
        status, _, err = bench(capsys, *sweep_args(ray_cluster, out, ray_cluster.store, device), "--cluster",
                               ray_cluster.client_address)
    finally:
        import ray

        ray.shutdown()
    assert status == 0, err
    (record,) = records(out)
    assert record["status"] == "ok" and record["case"]["device"] == device
    assert record["conditions"]["cluster"]["node_id"] == ray_cluster.node_id(ray_cluster.serial("B"))
    assert record["conditions"]["artifact_reused"] and Path(record["artifact"]["path"]).is_file()


@pytest.mark.slow
def test_a_later_run_reuses_the_exports(ray_cluster, exported, capsys, tmp_path):
    """A fresh --out with the shared store: no export task, every artifact taken from the store."""
    before = store_entries(ray_cluster.store)
    out = tmp_path / "again"
    status, _, err = bench(capsys, *sweep_args(ray_cluster, out, ray_cluster.store, f"adb:{ray_cluster.serial('B')}"), "--cluster",
                           ray_cluster.address)
    assert status == 0, err
    assert err.count(": reused") == 1 and "exported in" not in err
    assert all(r["conditions"]["artifact_reused"] for r in records(out))
    assert store_entries(ray_cluster.store) == before


@pytest.mark.slow
def test_a_node_dying_mid_sweep_loses_only_its_cases(ray_cluster, exported, tmp_path):
    """Phone C's node is killed while C waits to cool down: A's cases finish, C's are recorded as lost."""
    from mobexport.benchmarks.cluster.connection import connect
    from mobexport.benchmarks.cluster.driver import run_cluster_sweep
    from mobexport.benchmarks.sweep.plan import SweepPlan
    from mobexport.devices.android import CoolingPolicy
    from mobexport.devices.measure import MeasurePolicy
    from mobexport.devices.registry import DeviceOptions

    host = ray_cluster.add_phone_node("C", PhoneSpec.from_fixture(thermal_trace={"thermal_zone0": [90000]}))
    plan = SweepPlan(models=[MODEL], targets=["onnx"], resolutions=[96])
    policy = MeasurePolicy(min_time_s=0.02, min_iters=5, max_iters=20, warmup_time_s=0.0)
    options = DeviceOptions(runners={"onnx": ray_cluster.runners["onnx"]},
                            cooling=CoolingPolicy(threshold_c=42.0, poll_s=0.5, max_wait_s=90.0))
    killed = []

    def kill_c_once(record):
        if not killed and record.case.device == f"adb:{ray_cluster.serial('A')}":
            killed.append(record.case)
            ray_cluster.kill_host(host)

    import ray

    connect(ray_cluster.address)
    try:
        out = tmp_path / "out"
        outcome = run_cluster_sweep(plan, [f"adb:{ray_cluster.serial('A')}", f"adb:{ray_cluster.serial('C')}"], out, policy, options,
                                    artifact_store=ray_cluster.store, on_record=kill_c_once)
    finally:
        ray.shutdown()
    got = records(out)
    assert killed and len(got) == 2                                    # every case has its record
    by_device = {d: [r for r in got if r["case"]["device"] == d] for d in (f"adb:{ray_cluster.serial('A')}", f"adb:{ray_cluster.serial('C')}")}
    assert all(r["status"] == "ok" for r in by_device[f"adb:{ray_cluster.serial('A')}"])   # nothing finished was lost
    assert all(r["status"] == "failed" and r["error"].startswith("lost:") for r in by_device[f"adb:{ray_cluster.serial('C')}"])
    assert len(outcome.measured) == 1 and len(outcome.failed) == 1


def test_two_sweeps_never_time_on_one_phone_at_once(ray_cluster, exported, tmp_path):
    """Two drivers' sweeps on the same phone at the same moment: its resource (amount 1) serializes them."""
    import io
    import threading

    from rich.console import Console

    import ray

    from mobexport.benchmarks.cluster.connection import connect
    from mobexport.benchmarks.cluster.driver import run_cluster_sweep
    from mobexport.benchmarks.sweep.plan import SweepPlan
    from mobexport.devices.measure import MeasurePolicy
    from mobexport.devices.registry import DeviceOptions

    plan = SweepPlan(models=[MODEL], targets=["onnx"], resolutions=[96])
    policy = MeasurePolicy(min_time_s=0.02, min_iters=5, max_iters=20, warmup_time_s=0.0)
    options = DeviceOptions(runners={"onnx": ray_cluster.runners["onnx"]})
    outs = [tmp_path / "one", tmp_path / "two"]
    errors = []

    def sweep(out):
        try:
            run_cluster_sweep(plan, [f"adb:{ray_cluster.serial('A')}"], out, policy, options, artifact_store=ray_cluster.store,
                              console=Console(file=io.StringIO()))
        except BaseException as exc:  # reported below
            errors.append(exc)

    connect(ray_cluster.address)
    try:
        threads = [threading.Thread(target=sweep, args=(out,)) for out in outs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        ray.shutdown()
    assert not errors, errors
    spans = sorted((r["conditions"]["cluster"]["started"], r["conditions"]["cluster"]["ended"])
                   for out in outs for r in records(out))
    assert len(spans) == 2 and spans[0][1] <= spans[1][0]


def test_ray_is_not_imported_without_cluster(ray_cluster, exported, tmp_path):
    """A local sweep (on phone A, its export from the store), the devices list: Ray never imported."""
    import os

    argv = sweep_args(ray_cluster, tmp_path / "out", ray_cluster.store, f"adb:{ray_cluster.serial('A')}")
    script = (
        "import sys\n"
        "from mobexport.cli import main\n"
        f"status = main(['bench', *{argv!r}])\n"
        "assert status == 0, status\n"
        "main(['devices', '--json'])\n"
        "print('RAY', 'ray' in sys.modules)\n"
    )
    env = {**os.environ, **ray_cluster.hosts[ray_cluster.serial("A")].env}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "RAY False" in done.stdout and len(records(tmp_path / "out")) == 1


def test_devices_of_the_cluster_and_the_ray_start_line(ray_cluster, capsys):
    """'devices --cluster' lists each phone with its node, and the fingerprint a node published."""
    import ray

    from mobexport.benchmarks.cluster import cli as cluster_cli
    from mobexport.benchmarks.cluster.connection import connect

    connect(ray_cluster.address)
    try:  # what 'mobexport cluster node' does on phone B's host, run there as a task holding the phone
        publish = ray.remote(cluster_cli.publish).options(resources={f"mobexport/adb:{ray_cluster.serial('B')}": 1}, num_cpus=0)
        assert ray.get(publish.remote({f"adb:{ray_cluster.serial('B')}": {"soc": "Google Tensor G3", "model": "Pixel 8"}})) == \
            ray_cluster.node_id(ray_cluster.serial('B'))
    finally:
        ray.shutdown()
    assert mobexport_main(["devices", "--cluster", ray_cluster.address, "--json"]) == 0
    rows = {r["device"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows[f"adb:{ray_cluster.serial('A')}"]["node_id"] == ray_cluster.node_id(ray_cluster.serial('A'))
    assert rows[f"adb:{ray_cluster.serial('B')}"]["node_id"] == ray_cluster.node_id(ray_cluster.serial('B'))
    assert rows[f"adb:{ray_cluster.serial('B')}"]["info"]["soc"] == "Google Tensor G3" and rows[f"adb:{ray_cluster.serial('A')}"]["info"] == {}


def test_ray_resources_line_names_this_hosts_devices(capsys):
    from mobexport.benchmarks.cluster.resources import host_name

    assert mobexport_main(["devices", "--ray-resources"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("ray start --address ") and f'"mobexport/local:{host_name()}": 1' in line


@pytest.mark.slow
def test_a_phone_that_disconnects_fails_its_case_not_the_sweep(ray_cluster, exported, capsys, tmp_path):
    """Phone D hangs up when its first runner starts: its case fails with the reason, phone A's case is kept."""
    ray_cluster.add_phone_node("D", PhoneSpec.from_fixture(disconnect_on_run=1))
    a, d = ray_cluster.device("A"), ray_cluster.device("D")
    out = tmp_path / "out"
    status, _, err = bench(capsys, *sweep_args(ray_cluster, out, ray_cluster.store, f"{a},{d}"), "--cluster",
                           ray_cluster.address)
    assert status == 1, err                                             # some cases failed; not exit 2
    by_device = {r["case"]["device"]: r for r in records(out)}
    assert by_device[a]["status"] == "ok"
    failed = by_device[d]
    assert failed["status"] == "failed" and f"device {d}" in failed["error"]
    assert "disconnected" in failed["error"]


@pytest.mark.slow
def test_a_case_whose_node_dies_is_retried_on_another_node_with_its_device(ray_cluster, exported, tmp_path):
    """Phone E is reachable from two hosts (both advertise it): the first dies mid-case, the second measures it."""
    import ray

    from mobexport.benchmarks.cluster.connection import connect
    from mobexport.benchmarks.cluster.driver import run_cluster_sweep
    from mobexport.benchmarks.sweep.plan import SweepPlan
    from mobexport.devices.android import CoolingPolicy
    from mobexport.devices.measure import MeasurePolicy
    from mobexport.devices.registry import DeviceOptions

    hot = ray_cluster.add_phone_node("E", PhoneSpec.from_fixture(thermal_trace={"thermal_zone0": [90000]}))
    phone = ray_cluster.phones["E"]
    options = DeviceOptions(runners={"onnx": ray_cluster.runners["onnx"]},
                            cooling=CoolingPolicy(threshold_c=42.0, poll_s=0.5, max_wait_s=60.0))
    plan = SweepPlan(models=[MODEL], targets=["onnx"], resolutions=[96])
    policy = MeasurePolicy(min_time_s=0.02, min_iters=5, max_iters=20, warmup_time_s=0.0)
    outcomes, errors = [], []

    def sweep():
        try:
            outcomes.append(run_cluster_sweep(plan, [ray_cluster.device("E")], tmp_path / "out", policy, options,
                                              artifact_store=ray_cluster.store))
        except BaseException as exc:  # reported below
            errors.append(exc)

    import threading
    import time

    connect(ray_cluster.address)
    try:  # the sweep in a thread; nodes are started and killed from this (main) thread, as Ray requires
        driver = threading.Thread(target=sweep)
        driver.start()
        deadline = time.time() + 60
        while time.time() < deadline and not phone.sandbox.thermal_reads:
            time.sleep(0.2)                      # the hot host is measuring: cooling down
        cool = ray_cluster.add_phone_node("E")   # a second host, with its own adb server, sees the same phone
        ray_cluster.kill_host(hot)
        phone.sandbox.spec.thermal_trace["thermal_zone0"] = [30000]    # it has cooled by now
        driver.join(timeout=120)
    finally:
        ray.shutdown()
    assert not errors, errors
    outcome = outcomes[0]
    (record,) = records(tmp_path / "out")
    assert record["status"] == "ok", record["error"]
    assert record["conditions"]["cluster"]["node_id"] == cool.node.node_id
    assert record["conditions"]["cluster"]["attempt"] == 2
    assert len(outcome.measured) == 1


@pytest.mark.slow
def test_an_interrupted_driver_keeps_what_finished_and_resumes(ray_cluster, exported, tmp_path):
    import ray

    from mobexport.benchmarks.cluster.connection import connect
    from mobexport.benchmarks.cluster.driver import run_cluster_sweep
    from mobexport.benchmarks.sweep.plan import SweepPlan
    from mobexport.devices.measure import MeasurePolicy
    from mobexport.devices.registry import DeviceOptions

    plan = SweepPlan(models=[MODEL], targets=["onnx"], resolutions=[96])
    policy = MeasurePolicy(min_time_s=0.02, min_iters=5, max_iters=20, warmup_time_s=0.0)
    options = DeviceOptions(runners={"onnx": ray_cluster.runners["onnx"]})
    devices, out = [f"adb:{ray_cluster.serial('A')}", f"adb:{ray_cluster.serial('B')}"], tmp_path / "out"

    def interrupt(record):
        raise KeyboardInterrupt

    connect(ray_cluster.address)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_cluster_sweep(plan, devices, out, policy, options, artifact_store=ray_cluster.store,
                              on_record=interrupt)
        (kept,) = records(out)                                          # appended before the interrupt
        outcome = run_cluster_sweep(plan, devices, out, policy, options, artifact_store=ray_cluster.store)
    finally:
        ray.shutdown()
    assert outcome.skipped == 1 and len(outcome.measured) == 1
    assert {r["case"]["device"] for r in records(out)} == set(devices) and records(out)[0] == kept
