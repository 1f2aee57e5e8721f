"""The compiler studies: the plain Mobile-Former is the zoo's function, and both studies run and report.

The fast end-to-end tests replace the exports (tens of seconds each) with a
tiny ONNX model; the plain artifact's check against eager, the worker
processes, the interleaved timing, the ratios and the JSON are the real ones.
The ``slow`` tests run the studies on real exports.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mobexport.benchmarks.studies import compiler_benchmark, zoo_efficiency
from mobexport.benchmarks.studies.plain_mobile_former import plain_mobile_former
from mobexport.models import create_model, get_spec


def zoo_with_a_signal(name: str) -> torch.nn.Module:
    """A zoo model whose weights make every branch matter (default Linear init leaves DY-ReLU near a plain ReLU)."""
    model = create_model(name)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Linear):
                m.weight.normal_(0.0, 0.05)
                m.bias.normal_(0.0, 0.1)
            elif isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)
    return model.eval()


@pytest.mark.parametrize("variant", ["26m", "52m"])
def test_the_plain_mobile_former_loads_the_zoo_weights_and_computes_the_same(variant):
    zoo = zoo_with_a_signal(f"mobile_former_{variant}")
    plain = plain_mobile_former(variant).eval()
    assert [(k, v.shape) for k, v in plain.state_dict().items()] == [(k, v.shape) for k, v in zoo.state_dict().items()]
    plain.load_state_dict(zoo.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected, got = zoo(x), plain(x)
    assert expected.std() > 0.05  # the comparison is not between two near-constant outputs
    assert (expected - got).abs().max() < 1e-4


def test_the_plain_mobile_former_takes_zoo_names_and_refuses_unknown_variants():
    assert plain_mobile_former("mobile_former_26m").tokens.weight.shape == (3, 128)
    with pytest.raises(ValueError, match="unknown Mobile-Former variant"):
        plain_mobile_former("mobile_former_1m")


def test_per_round_ratios_pair_the_turns_of_one_round():
    a = compiler_benchmark.Case("a", "plain", "onnx", 96, samples_ms=[2.0, 2.0, 8.0, 8.0, 3.0, 3.0])
    b = compiler_benchmark.Case("b", "plain", "onnx", 96, samples_ms=[1.0, 1.0, 4.0, 4.0, 1.0, 1.0])
    assert compiler_benchmark.per_round(a.samples_ms, 2) == [2.0, 8.0, 3.0]
    assert compiler_benchmark.paired_ratio(a, b, 2) == 2.0  # rounds: 2, 2, 3 (a ratio of medians says 3/1 = 3)
    assert compiler_benchmark.paired_ratio(a, None, 2) is None


def test_the_zoo_default_is_the_smallest_of_each_family_plus_the_two_references():
    from mobexport.models import list_models

    models = zoo_efficiency.default_models()
    assert len(models) == len(set(models))
    assert {"mobile_former_294m", "mobilenet_v3_large_100"} <= set(models)
    for family in {get_spec(m).family for m in list_models()}:
        smallest = min((m for m in list_models() if get_spec(m).family == family),
                       key=lambda m: get_spec(m).reference_macs)
        assert smallest in models, family


# --------------------------------------------------------------------------- fast end-to-end, with a tiny model


def tiny_onnx(path, resolution: int, weight: np.ndarray) -> None:
    """ONNX for ``x.mean((2, 3)) @ weight``: loads and runs in milliseconds."""
    from onnx import TensorProto, helper, numpy_helper, save

    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["x"], ["pooled"]), helper.make_node("Flatten", ["pooled"], ["flat"]),
         helper.make_node("MatMul", ["flat", "w"], ["logits"])],
        "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, resolution, resolution])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, weight.shape[1]])],
        [numpy_helper.from_array(weight.astype(np.float32), "w")])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


class TinyTorch(torch.nn.Module):
    def __init__(self, weight: np.ndarray):
        super().__init__()
        self.weight = torch.from_numpy(weight.astype(np.float32))

    def forward(self, x):
        return x.mean((2, 3)) @ self.weight


WEIGHTS = {name: np.random.default_rng(seed).standard_normal((3, 5))
           for seed, name in enumerate(("mobile_former_26m", "mobile_former_52m", "mobilenet_v3_small_100",
                                        "mobilenet_v3_small_075"))}
FAKE_MACS = {"mobile_former_26m": 3_000_000, "mobile_former_52m": 6_000_000, "mobilenet_v3_small_100": 4_000_000,
             "mobilenet_v3_small_075": 2_000_000}


def fake_pipeline(case, root, rebuild, *, passes="default", checkpoint=None):
    """Stands in for ``build_with_pipeline``: a tiny artifact with the manifest fields the studies read."""
    directory = root / case.model / case.target
    directory.mkdir(parents=True, exist_ok=True)
    tiny_onnx(directory / "model.onnx", case.resolution, WEIGHTS[case.model])
    case.artifact = directory / "model.onnx"
    case.manifest = {"artifact": {"file": "model.onnx", "kind": "onnx"},
                     "resolution": {"export": case.resolution, "dynamic": False},
                     "macs": {"total_macs": FAKE_MACS[case.model]}, "passes": passes}
    case.export_s, case.check = 0.1, {"passed": True, "by": "export_model"}


@pytest.fixture
def tiny_exports(monkeypatch):
    """Plain and pipeline exports of the tiny model; the plain mobile_former_52m is wrong, so it must be refused."""
    monkeypatch.setattr(compiler_benchmark, "build_with_pipeline", fake_pipeline)
    monkeypatch.setattr(zoo_efficiency, "build_with_pipeline", fake_pipeline)
    monkeypatch.setattr("mobexport.benchmarks.studies.quant_latency.latency_weights", lambda model, directory: None)

    def plain_model(name, weights):
        return TinyTorch(WEIGHTS[name] * (1.5 if name == "mobile_former_52m" else 1.0))

    monkeypatch.setattr(compiler_benchmark, "plain_model", plain_model)
    monkeypatch.setattr(compiler_benchmark, "export_plainly",
                        lambda model, target, resolution, path: tiny_onnx(path, resolution, WEIGHTS[path.parent.name]))


def test_compiler_benchmark_runs_end_to_end_and_refuses_a_plain_artifact_that_disagrees(tmp_path, tiny_exports,
                                                                                       monkeypatch):
    argv = ["--models", "mobile_former_26m,mobile_former_52m", "--baseline", "mobilenet_v3_small_100",
            "--runtimes", "onnx", "--resolutions", "96", "--threads", "1", "--rounds", "2", "--out", str(tmp_path)]
    assert compiler_benchmark.main(argv) == 0
    summary = json.loads((tmp_path / "compiler_benchmark.json").read_text())
    refused = {a["key"]: a["refused"] for a in summary["artifacts"] if a["refused"]}
    assert list(refused) == ["plain/mobile_former_52m/onnx/96"] and "disagrees with eager" in refused[
        "plain/mobile_former_52m/onnx/96"]
    rows = {r["model"]: r for r in summary["rows"]}
    good, bad = rows["mobile_former_26m"], rows["mobile_former_52m"]
    for key in ("plain_mf_vs_baseline", "mobexport_mf_vs_baseline", "mobexport_mf_speedup_over_plain"):
        assert good[key] > 0
    assert bad["plain_mf_vs_baseline"] is None and bad["mobexport_mf_speedup_over_plain"] is None
    assert bad["mobexport_mf_vs_baseline"] > 0
    assert good["macs_ratio"] == 0.75 and good["goal"] is None  # no goal at 96 px
    assert good["samples_per_case"] == 4 and set(good["load_average"]) == {"min", "max", "mean"}
    assert all(a["export_s"] is not None for a in summary["artifacts"])
    assert summary["ratio_statistic"] == "median of per-round ratios"
    checked = next(a for a in summary["artifacts"] if a["key"] == "plain/mobile_former_26m/onnx/96")["check"]
    assert checked["passed"] and checked["by"] == "eager" and checked["cosine"] > 0.99999

    # A second run reuses the plain artifacts, with their recorded export times and checks.
    def export_again(*args):
        raise AssertionError("exported again")

    monkeypatch.setattr(compiler_benchmark, "export_plainly", export_again)
    assert compiler_benchmark.main([*argv, "--rounds", "1"]) == 0
    again = json.loads((tmp_path / "compiler_benchmark.json").read_text())
    assert [(a["export_s"], a["refused"]) for a in again["artifacts"]] == \
        [(a["export_s"], a["refused"]) for a in summary["artifacts"]]


def test_zoo_efficiency_runs_end_to_end_with_a_row_for_a_resolution_a_model_does_not_take(tmp_path, tiny_exports):
    argv = ["--models", "mobile_former_26m", "--baseline", "mobilenet_v3_small_075", "--runtimes", "onnx",
            "--resolutions", "64,96", "--threads", "1", "--rounds", "2", "--passes", "none", "--out", str(tmp_path)]
    assert zoo_efficiency.main(argv) == 0
    summary = json.loads((tmp_path / "zoo_efficiency.json").read_text())
    assert summary["passes"] == "none" and summary["models"] == ["mobile_former_26m", "mobilenet_v3_small_075"]
    rows = {(r["model"], r["resolution"]): r for r in summary["rows"]}
    assert "outside" in rows[("mobile_former_26m", 64)]["na"]  # the zoo's range starts at 96
    mf, base = rows[("mobile_former_26m", 96)], rows[("mobilenet_v3_small_075", 96)]
    assert mf["na"] is None and mf["family"] == "mobile_former" and mf["gmacs"] == 0.003
    assert mf["ms_per_gmac"] == pytest.approx(mf["median_ms"] / 0.003, rel=1e-2)
    assert base["relative_to_baseline"] == 1.0 and base["goal_met"] is True
    assert mf["relative_to_baseline"] > 0 and isinstance(mf["goal_met"], bool)


# --------------------------------------------------------------------------- slow: real exports


@pytest.mark.slow  # 60-75 s on a shared 2-core host: two pipeline exports and two dynamo ONNX exports
def test_compiler_benchmark_on_real_exports(tmp_path):
    argv = ["--models", "mobile_former_26m", "--baseline", "mobilenet_v3_small_100", "--runtimes", "onnx",
            "--resolutions", "96", "--threads", "1", "--rounds", "2", "--out", str(tmp_path)]
    assert compiler_benchmark.main(argv) == 0
    summary = json.loads((tmp_path / "compiler_benchmark.json").read_text())
    assert not [a for a in summary["artifacts"] if a["refused"]]
    (row,) = summary["rows"]
    assert row["mobexport_mf_vs_baseline"] > 0 and row["plain_mf_vs_baseline"] > 0 and row["macs_ratio"] > 0
    assert all(a["check"]["passed"] and a["export_s"] > 0 for a in summary["artifacts"])


@pytest.mark.slow  # 30-40 s on a shared 2-core host (two pipeline exports): over the fast set's 30 s budget
def test_zoo_efficiency_on_real_exports(tmp_path):
    argv = ["--models", "mobile_former_26m", "--baseline", "mobilenet_v3_small_075", "--runtimes", "onnx",
            "--resolutions", "96", "--threads", "1", "--rounds", "2", "--out", str(tmp_path)]
    assert zoo_efficiency.main(argv) == 0
    rows = json.loads((tmp_path / "zoo_efficiency.json").read_text())["rows"]
    assert [r["model"] for r in rows] == ["mobile_former_26m", "mobilenet_v3_small_075"]
    assert all(r["na"] is None and r["gmacs"] > 0 and r["ms_per_gmac"] > 0 for r in rows)
