"""The weights quant_latency exports: random, but with logits an int8 artifact can represent."""

from __future__ import annotations

import torch

from mobexport.benchmarks.studies.quant_latency import latency_weights
from mobexport.models import create_model


def test_latency_weights_keep_a_signal_where_the_default_init_loses_it(tmp_path):
    name = "mobilenet_v3_small_100"
    path = latency_weights(name, tmp_path)
    x = torch.randn(4, 3, 96, 96)
    default = create_model(name).eval()
    loaded = create_model(name).eval()
    loaded.load_state_dict(torch.load(path, weights_only=True))
    with torch.no_grad():
        assert float(loaded(x).std()) > 100 * float(default(x).std())
    mtime = path.stat().st_mtime_ns
    assert latency_weights(name, tmp_path) == path and path.stat().st_mtime_ns == mtime  # reused, not redrawn


def test_a_pair_whose_export_fails_is_skipped_with_its_reason(monkeypatch):
    from types import SimpleNamespace

    from rich.console import Console

    from mobexport.benchmarks.studies import quant_latency
    from mobexport.errors import ParityError

    def fake_export(model, target, mode, args):
        if (target, mode) == ("executorch", "int8"):
            raise ParityError("executorch artifact differs from PyTorch")
        return f"{model}-{target}-{mode}"

    monkeypatch.setattr(quant_latency, "artifact_for", fake_export)
    cases, failed = quant_latency.export_cases(["m"], ["onnx", "executorch"], SimpleNamespace(resolution=96),
                                               Console(quiet=True))
    assert [c[:3] for c in cases] == [("m", "onnx", "none"), ("m", "onnx", "int8")]
    assert list(failed) == [("m", "executorch")] and "int8 export failed" in failed[("m", "executorch")]
    assert "differs from PyTorch" in failed[("m", "executorch")]
