"""The ablation study's variants: each takes out exactly its part and still runs."""

from __future__ import annotations

import pytest
import torch

from mobexport.benchmarks.studies import mobile_former_ablation as ablation
from mobexport.models.mobile_former import DynamicReLU, Former, Former2Mobile, Mobile2Former

PART_TYPES = {"no_dynamic_relu": DynamicReLU, "no_mobile_to_former": Mobile2Former, "no_former": Former,
              "no_former_to_mobile": Former2Mobile}


def count(model: torch.nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


@pytest.mark.parametrize("variant", ablation.PARTS)
def test_a_variant_drops_its_parts_and_keeps_the_others(variant):
    whole = ablation.full("mobile_former_26m")
    model = getattr(ablation, variant)("mobile_former_26m")
    dropped = set(PART_TYPES) if variant == "mobile_only" else {variant}
    for name, kind in PART_TYPES.items():
        assert count(whole, kind) > 0
        assert count(model, kind) == (0 if name in dropped else count(whole, kind)), name
    with torch.no_grad():
        assert model(torch.randn(1, 3, 96, 96)).shape == (1, 1000)


def test_variants_are_user_model_references_the_pipeline_resolves():
    from mobexport.models.references import resolve

    ref = resolve(ablation.reference("no_former"), model_kwargs={"model": "mobile_former_26m"})
    assert count(ref.build(), Former) == 0
