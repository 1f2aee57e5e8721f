"""Every zoo model exports to ONNX with parity at its default resolution and one other.

The default run exports the smallest variant of each family; the rest run
with ``-m slow``.
"""

from __future__ import annotations

import pytest

from mobexport.config import ExportConfig
from mobexport.export.pipeline import export_model
from mobexport.models import get_spec, list_models, smallest_per_family

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")


FAST = set(smallest_per_family())
CASES = [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in list_models()]


@pytest.mark.parametrize("name", CASES)
def test_onnx_parity_at_two_resolutions(name, out_dir):
    spec = get_spec(name)
    artifact = export_model(ExportConfig(model=name, target="onnx", out_dir=out_dir, parity_samples=4))
    parity = artifact.manifest.parity
    assert len(parity) == 2, "a dynamic ONNX artifact is checked at two resolutions"
    assert parity[0]["resolution"] == spec.default_resolution
    assert parity[1]["resolution"] != spec.default_resolution
    for point in parity:
        assert point["max_abs_error"] < 1e-4 and point["cosine"] > 0.99999 and point["top1_agreement"] == 1.0
    assert artifact.path.stat().st_size > 0.9 * 4 * spec.reference_params  # fp32 weights are all there
