"""Core ML exports of the zoo pass parity through the MIL reference interpreter, at fp32 and at the default fp16.

The default run covers the attention ops (Mobile-Former-26M, fp16, enumerated
shapes, two resolutions) and the CNN ops (MobileNetV3-Small, fp32); every
family's smallest model and Mobile-Former-294M at both precisions are ``slow``.
"""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("coremltools", reason="the coreml extra is not installed")

from mobexport.config import ExportConfig  # noqa: E402
from mobexport.export.pipeline import export_model  # noqa: E402
from mobexport.models.registry import smallest_per_family  # noqa: E402

ON_MAC = sys.platform == "darwin"


def export(out_dir, model, resolution, precision, dynamic=False):
    config = ExportConfig(model=model, target="coreml", resolution=resolution, out_dir=out_dir, dynamic=dynamic,
                          parity_samples=2,
                          target_options={"precision": precision, "deployment_target": "iOS16", "image_input": False,
                                          "class_labels": None})
    return export_model(config)


def check_interpreter_parity(artifact, precision, resolutions):
    m = artifact.manifest
    runtime = m.target_details["parity_runtime"]
    assert runtime["reference_interpreter"]["unsupported_ops"] == []
    assert runtime["reference_interpreter"]["fp16_program"] is (precision == "fp16")
    assert runtime["name"] == ("coreml-mlmodel-predict" if ON_MAC else "coreml-reference-interpreter")
    assert [p["resolution"] for p in m.parity] == resolutions
    for p in m.parity:
        assert p["passed"] and p["tolerance"]["name"] == precision and p["top1_agreement"] == 1.0, p
        assert p["cosine"] > (0.9999 if precision == "fp16" else 0.999999), p


def test_mobile_former_26m_fp16_enumerated_shapes(tmp_path):
    artifact = export(tmp_path, "mobile_former_26m", 96, "fp16", dynamic=True)
    assert artifact.manifest.target_details["flexible_shapes"]["kind"] == "enumerated"
    check_interpreter_parity(artifact, "fp16", [96, 160])


def test_mobilenet_v3_small_fp32(tmp_path):
    check_interpreter_parity(export(tmp_path, "mobilenet_v3_small_075", 96, "fp32"), "fp32", [96])


HEAVY = sorted(set(smallest_per_family()) | {"mobile_former_294m"})


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("model", HEAVY)
def test_zoo_parity_through_the_reference_interpreter(tmp_path, model, precision):
    from mobexport.models import get_spec

    resolution = get_spec(model).default_resolution
    check_interpreter_parity(export(tmp_path, model, resolution, precision), precision, [resolution])
