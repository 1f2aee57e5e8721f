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


def test_without_mobile_to_former_the_tokens_still_depend_on_the_image():
    model = ablation.no_mobile_to_former("mobile_former_26m")
    bridges = [m for m in model.modules() if isinstance(m, ablation.TokensPass)]
    assert isinstance(bridges[0], ablation.TokensTouch) and not any(isinstance(b, ablation.TokensTouch)
                                                                    for b in bridges[1:])
    x = torch.randn(1, 3, 96, 96, requires_grad=True)
    z = model.tokens.weight.repeat(1, 1, 1)
    assert torch.autograd.grad(bridges[0](model.stem(x), z).sum(), x, allow_unused=True)[0] is not None
