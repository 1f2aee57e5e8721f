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
# CMT's dynamic trace costs about two minutes of symbolic-shape reasoning on 2 cores: the default run
# exports its smallest model statically at both resolutions, the dynamic export runs with the slow ones.
STATIC_IN_DEFAULT_RUN = {"cmt"}


def _cases():
    for name in list_models():
        static_first = name in FAST and get_spec(name).family in STATIC_IN_DEFAULT_RUN
        if static_first:
            yield pytest.param(name, False, id=f"{name}-static")
        marks = () if name in FAST and not static_first else (pytest.mark.slow,)
        yield pytest.param(name, True, id=name, marks=marks)


@pytest.mark.parametrize("name, dynamic", list(_cases()))
def test_onnx_parity_at_two_resolutions(name, dynamic, out_dir):
    spec = get_spec(name)
    if dynamic:
        artifact = export_model(ExportConfig(model=name, target="onnx", out_dir=out_dir, parity_samples=4))
        parity = artifact.manifest.parity
        assert len(parity) == 2, "a dynamic ONNX artifact is checked at two resolutions"
    else:
        other = spec.default_resolution - 2 * spec.resolutions.stride
        parity = []
        for res in (spec.default_resolution, other):
            artifact = export_model(ExportConfig(model=name, target="onnx", resolution=res, dynamic=False,
                                                 out_dir=out_dir / str(res), parity_samples=4))
            assert artifact.manifest.resolution["dynamic"] is False
            parity += artifact.manifest.parity
    assert parity[0]["resolution"] == spec.default_resolution
    assert parity[1]["resolution"] != spec.default_resolution
    for point in parity:
        assert min(point["max_abs_error"], point["relative_max_error"]) < 1e-4 and point["cosine"] > 0.99999 and point["top1_agreement"] == 1.0
    assert artifact.path.stat().st_size > 0.9 * 4 * spec.reference_params  # fp32 weights are all there
