"""Instruction counts under callgrind: parsing, refusals, and (slow) the real count of a tiny model twice."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from mobexport.cli import main
from mobexport.devices import instructions
from mobexport.devices.instructions import InstructionCount, ValgrindMissingError, count_instructions, read_dumps
from mobexport.errors import DeviceError

HAS_VALGRIND = shutil.which("valgrind") is not None
# Stated bound on the count's own spread (module docstring: 0.26% measured on MobileNetV3-Small at 96 px).
SPREAD_BOUND = 0.01


def _dump(path, part, total, trigger="--dump-before=getppid", thread=1):
    path.write_text(f"version: 1\ncreator: callgrind-3.19.0\npart: {part}\nthread: {thread}\n"
                    f"desc: Trigger: {trigger}\nevents: Ir\nsummary: {total}\n\nfn=(1) main\n0 {total}\n\n"
                    f"totals: {total}\n")


def test_dumps_are_read_in_part_order_for_the_main_thread_only(tmp_path):
    out = tmp_path / "callgrind.out"
    out.write_text("")  # left empty by callgrind when threads are separated
    for part, total in ((1, 700), (2, 120), (3, 100), (10, 101), (11, 104)):
        _dump(tmp_path / f"callgrind.out.{part}-01", part, total)
        _dump(tmp_path / f"callgrind.out.{part}-02", part, 5_000 * part, thread=2)  # a pool thread's slices
    _dump(tmp_path / "callgrind.out-01", 12, 55, "Program termination")
    _dump(tmp_path / "callgrind.out-02", 12, 9, "Program termination", thread=2)
    assert read_dumps(out) == [700, 120, 100, 101, 104, 55]


def test_a_count_is_the_median_of_the_measured_inferences_with_its_spread():
    count = InstructionCount(median=100, samples=(100, 101, 99), startup=700, warmup=1)
    assert count.spread == pytest.approx(0.02)
    assert count.to_dict()["samples"] == [100, 101, 99]


def test_missing_valgrind_is_a_one_line_error_with_the_install_hint(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no valgrind here
    with pytest.raises(ValgrindMissingError, match="apt-get install valgrind"):
        instructions.valgrind_executable()
    status = main(["bench", "--metric", "instructions", "--models", "mobilenet_v3_small_075", "--targets", "onnx",
                   "--resolutions", "96", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 2, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "valgrind" in lines[0] and "apt-get install valgrind" in lines[0], err
    assert not (tmp_path / "out" / "results.jsonl").exists()


@pytest.mark.skipif(not HAS_VALGRIND, reason="valgrind is not installed")
@pytest.mark.parametrize("argv, fragment", [
    (["--targets", "coreml"], "counts onnx, executorch artifacts, not coreml"),
    (["--targets", "onnx", "--threads", "2"], "counts at one thread, not --threads 2"),
])
def test_what_cannot_be_counted_is_refused_before_any_export(argv, fragment, tmp_path, capsys):
    status = main(["bench", "--metric", "instructions", "--models", "mobilenet_v3_small_075", "--resolutions", "96",
                   "--out", str(tmp_path / "out"), *argv])
    err = capsys.readouterr().err
    assert status == 2 and fragment in err, err


def test_another_kind_is_refused():
    with pytest.raises(DeviceError, match="not 'coreml'"):
        count_instructions("coreml", "model.mlpackage", 96)


def tiny_onnx(path, resolution=32):
    """Conv 3->8, ReLU, global pool, linear 8->4: a real ONNX Runtime workload in a few kilobytes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name) for name, shape in
               (("w", (8, 3, 3, 3)), ("b", (8,)), ("fc", (8, 4)))]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("MatMul", ["f", "fc"], ["y"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                            [1, 3, resolution, resolution])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], weights)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    return path


@pytest.mark.slow
@pytest.mark.skipif(not HAS_VALGRIND, reason="valgrind is not installed")
def test_a_tiny_model_counts_the_same_in_two_runs_within_the_stated_bound(tmp_path):
    model = tiny_onnx(tmp_path / "tiny.onnx")
    first = count_instructions("onnx", model, 32, warmup=1, iters=3)
    second = count_instructions("onnx", model, 32, warmup=1, iters=3)
    for count in (first, second):
        assert count.spread <= SPREAD_BOUND, count
        assert len(count.samples) == 3 and count.warmup == 1  # start-up and the warm-up are not in the count
        assert count.tool_versions["valgrind"] and count.tool_versions["onnxruntime"]
    assert abs(first.median / second.median - 1) <= SPREAD_BOUND, (first, second)


@pytest.mark.skipif(not HAS_VALGRIND, reason="valgrind is not installed")
def test_an_interrupted_instruction_sweep_stops_every_running_count(tmp_path, monkeypatch):
    import subprocess
    import threading
    import time
    from types import SimpleNamespace

    from rich.console import Console

    from mobexport.benchmarks.sweep import instructions as instruction_sweep
    from mobexport.benchmarks.sweep.plan import SweepPlan

    started, blocked = threading.Event(), []

    def slow_count(kind, path, resolution, *args):
        if "96" in str(path):
            started.wait(10)
            raise KeyboardInterrupt  # as Ctrl-C arrives while the others count
        proc = subprocess.Popen(["sleep", "60"])
        with instructions._RUNNING_LOCK:
            instructions._RUNNING.add(proc)
        blocked.append(proc)
        if len(blocked) == 2:
            started.set()
        proc.wait()
        raise DeviceError("stopped", "")

    def fake_prepare(case, out_dir, on_step=None):
        return SimpleNamespace(artifact=SimpleNamespace(path=tmp_path / f"{case.model}-{case.resolution}.onnx"),
                               macs=1, params=1, reused=True, artifact_facts=dict)

    monkeypatch.setattr(instruction_sweep, "count_instructions", slow_count)
    plan = SweepPlan(models=["mobilenet_v3_small_075"], targets=["onnx"], resolutions=[96, 128, 160], seed=None)
    began = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        instruction_sweep.run_instruction_sweep(plan, tmp_path / "out", {}, Console(file=open(tmp_path / "log", "w")),
                                                prepare_case=fake_prepare, jobs=3)
    for proc in blocked:
        assert proc.wait(timeout=10) != 0  # killed, not left to run out its 60 s
    assert time.monotonic() - began < 30
