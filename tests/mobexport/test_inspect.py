"""``mobexport inspect`` on each artifact kind: readable manifest, re-verified hash, tampering caught."""

from __future__ import annotations

import json
import shutil

import pytest

from mobexport.cli import main
from mobexport.config import ExportConfig
from mobexport.export.pipeline import export_model
from mobexport.report import delegation_summary, format_detail

SMALL = "mobilenet_v3_small_100"
# target -> (target options, what its details must show in the printout)
KINDS = {
    "onnx": ({}, ["op_histogram", "opset"]),
    "executorch": ({"backend": "xnnpack"}, ["delegation", "xnnpack subgraph(s)", "planned_memory_bytes"]),
    # fp32: random-init MobileNetV3's logits (~1e-8) are below fp16's range, so an fp16 program rightly fails parity.
    "coreml": ({"deployment_target": "iOS16", "precision": "fp32"}, ["mlProgram", "compute_precision", "op_histogram"]),
    "tensorrt": ({"build_engine": False}, ["trtexec", "--saveEngine=model.engine", "engine_built"]),
}


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    """Rich wraps table cells at the terminal width; a wide one keeps each detail on one line."""
    monkeypatch.setenv("COLUMNS", "400")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("inspect")
    made = {}
    for target, (options, _) in KINDS.items():
        pytest.importorskip({"executorch": "executorch", "coreml": "coremltools"}.get(target, "onnx"))
        # No graph passes: inspect is about the manifest, and each export stays short.
        config = ExportConfig(model=SMALL, target=target, resolution=96, out_dir=root, dynamic=False,
                              passes="none", parity_samples=1, target_options={"precision": None, **options})
        made[target] = export_model(config)
    return made


def inspect(capsys, *argv):
    status = main(["inspect", *map(str, argv)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize("target", list(KINDS))
def test_inspect_prints_manifest_and_verifies_hash(artifacts, capsys, target):
    artifact = artifacts[target]
    status, out, err = inspect(capsys, artifact.directory)
    assert status == 0, err
    assert f"{SMALL} -> {target}" in out and "sha256 verified" in out
    for fragment in KINDS[target][1]:
        assert fragment in out, (fragment, out)
    # The main file and the manifest path lead to the same printout.
    assert inspect(capsys, artifact.directory / "manifest.json")[1] == out


def test_inspect_json_is_the_manifest(artifacts, capsys):
    status, out, _ = inspect(capsys, artifacts["executorch"].directory, "--json")
    assert status == 0
    data = json.loads(out)
    assert data["target"] == "executorch" and data["target_details"]["delegate_subgraphs"] >= 1


@pytest.mark.parametrize("target", ["executorch", "coreml"])
def test_inspect_catches_a_changed_artifact(artifacts, capsys, tmp_path, target):
    copy = tmp_path / target
    shutil.copytree(artifacts[target].directory, copy)
    main_file = copy / artifacts[target].manifest.artifact["file"]
    victim = main_file if main_file.is_file() else next(p for p in sorted(main_file.rglob("*")) if p.is_file())
    victim.write_bytes(victim.read_bytes() + b"\0")
    status, _, err = inspect(capsys, copy)
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1 and "does not match its manifest's sha256" in lines[0]


def test_inspect_of_a_missing_artifact_is_one_line(capsys, tmp_path):
    status, _, err = inspect(capsys, tmp_path / "nothing")
    assert status == 2 and f"'{tmp_path / 'nothing'}' does not exist" in err and "Traceback" not in err


def test_detail_formatting():
    assert format_detail("planned_memory_bytes", 3 << 20) == "3.0 MiB"
    assert format_detail("macs_portable", 2_500_000) == "2.50M"
    assert format_detail("mac_coverage", 0.9876) == "98.8%"
    assert format_detail("inputs", [{"name": "input", "shape": [1, 3, 96, 96]}]) == "input [1, 3, 96, 96]"
    assert format_detail("sizes", list(range(20))).endswith("... (20 in all)")
    line = delegation_summary({"backend": "xnnpack", "delegate_subgraphs": 2, "ops_delegated": 90, "ops_portable": 10,
                               "op_coverage": 0.9, "mac_coverage": 0.995,
                               "portable_ops": {"aten.cumsum.default": 4, "dim_order_ops._to_dim_order_copy.default": 6},
                               "portable_ops_on_activations": {"aten.cumsum.default": 4}})
    assert line == ("2 xnnpack subgraph(s); 90/100 ops (90%) and 99.5% of MACs delegated; "
                    "on portable kernels: aten.cumsum.default x4; 6 portable op(s) on constants only")
