"""The weights quant_latency exports: random, but with logits an int8 artifact can represent."""

from __future__ import annotations

import torch

from mobexport.benchmarks.quant_latency import latency_weights
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
