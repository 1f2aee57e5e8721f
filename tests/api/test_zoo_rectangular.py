"""Zoo models at rectangular sizes (``--resolution HxW``): export, parity, the manifest, the runner's check."""

from __future__ import annotations

import json

import numpy as np
import pytest

import mobexport
from mobexport.cli import main
from mobexport.errors import MissingDependencyError, ResolutionError


@pytest.mark.parametrize("target", ["onnx", "executorch"])
def test_mobile_former_26m_at_96x128(target, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--model", "mobile_former_26m", "--target", target, "--resolution", "96x128", "--static",
                 "--out", str(out), "--parity-samples", "2", "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["resolution"]["size"] == "96x128" and manifest["resolution"]["input_shape"] == [1, 3, 96, 128]
    assert manifest["parity"][0]["size"] == "96x128" and manifest["parity"][0]["passed"]
    assert manifest["macs"]["size"] == "96x128"
    assert manifest["model"]["source"] == {"kind": "zoo", "name": "mobile_former_26m"}
    with mobexport.load(out / "mobile_former_26m" / target) as model:
        assert model(np.zeros((1, 3, 96, 128), np.float32)).shape == (1, 1000)
        with pytest.raises(ResolutionError, match="96x128 only"):
            model(np.zeros((1, 3, 128, 96), np.float32))


@pytest.mark.slow
@pytest.mark.parametrize("target", ["onnx", "executorch", "coreml", "tensorrt", "litert"])
def test_mobile_former_294m_at_256x320_on_every_target(target, tmp_path):
    from mobexport.export.targets import get_target

    try:
        get_target(target).require()
    except MissingDependencyError as exc:
        pytest.skip(str(exc))
    options = {"build_engine": False} if target == "tensorrt" else {}
    artifact = mobexport.export("mobile_former_294m", target, resolution="256x320", dynamic=False, out=tmp_path,
                                **options)
    assert artifact.manifest.resolution["size"] == "256x320"
    assert all(p["passed"] for p in artifact.manifest.parity)


def test_a_sweep_mixing_square_and_hxw_sizes(tmp_path, capsys):
    """bench --resolutions 128x160,96: one record per size, curves ordered by pixel count, every plot written."""
    out = tmp_path / "sweep"
    assert main(["bench", "--models", "mobilenet_v3_small_075", "--targets", "onnx", "--resolutions", "128x160,96",
                 "--min-time", "0.02", "--min-iters", "5", "--max-iters", "20", "--warmup-time", "0",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(str(r["case"]["resolution"]) for r in records) == ["128x160", "96"]
    assert all(r["status"] == "ok" for r in records)
    rows = (out / "curves.csv").read_text().splitlines()
    sizes = [row.split(",")[rows[0].split(",").index("resolution")] for row in rows[1:]]
    assert sizes == ["96", "128x160"]
    for plot in ("latency_vs_resolution.png", "macs_vs_resolution.png", "latency_per_mac.png"):
        assert (out / plot).stat().st_size > 10_000, plot
