"""The study-only spellings of DY-ReLU's max (``where``, ``relu``), run after fold_dynamic_relu.

They live in ``benchmarks/studies/dynamic_relu_forms.py`` (the study that times them),
not in the product pass; these tests keep them exact.
"""

from __future__ import annotations

import pytest
import torch

from mobexport.benchmarks.studies.dynamic_relu_forms import FORMS, MaxFormPass
from mobexport.export.passes.fold_dynamic_relu import FoldDynamicReluPass

from .conftest import Fires, aten, check_pass, export_dynamic, images, zoo_module
from .test_fold_dynamic_relu import DyReluBlock, SigmoidHyper

MAXIMUM = aten.maximum.default


def test_max_of_products_identities():
    """max(a1 x, a2 x) = x where(x >= 0, p, n) = n x + (p - n) relu(x), slopes of any sign and order."""
    g = torch.Generator().manual_seed(0)
    a1 = torch.rand(4, 32, 1, 1, generator=g) * 2  # [0, 2], as DY-ReLU's a1
    a2 = torch.rand(4, 32, 1, 1, generator=g) * 2 - 1  # [-1, 1], as a2; crosses a1 in some channels
    a1[0, :4], a2[0, :4] = 0.0, torch.tensor([-1.0, 0.0, 0.5, 1.0]).reshape(4, 1, 1)  # saturated ends
    x = torch.randn(4, 32, 9, 9, generator=g)
    x[..., 0, 0] = 0.0
    assert ((a1 < a2).any() and (a1 > a2).any())
    p, n = torch.maximum(a1, a2), torch.minimum(a1, a2)
    reference = torch.maximum(a1 * x, a2 * x)
    torch.testing.assert_close(x * torch.where(x >= 0, p, n), reference, rtol=0, atol=0)
    torch.testing.assert_close(n * x + (p - n) * torch.relu(x), reference, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("form", ["where", "relu"])
def test_forms_on_mobile_former(form):
    gm = zoo_module("mobile_former_26m", 96, dynamic=True)
    FoldDynamicReluPass().run(gm)

    check_pass(lambda: MaxFormPass(form), Fires(gm, images((96, 128, 160)), rewrites=16, ops={
        aten.sub.Tensor: 16 if form == "relu" else 0,  # "relu" takes p - n on [B, C, 1, 1]
        MAXIMUM: 16, aten.minimum.default: 16,  # the max now runs on the slopes only
    }))
    assert not any(n.target is MAXIMUM and all(a.target is aten.mul.Tensor for a in n.args) for n in gm.graph.nodes)


@pytest.mark.parametrize("form", FORMS)
def test_forms_on_a_dynamic_block(form):
    gm = export_dynamic(DyReluBlock(), torch.randn(2, 3, 32, 32), multiple=8, low=8, high=64)
    FoldDynamicReluPass().run(gm)
    check_pass(lambda: MaxFormPass(form), Fires(gm, images((16, 32, 40), batch=2), rewrites=0 if form == "maximum" else 1))


def test_a_form_applies_where_the_hyper_function_does_not_fold():
    gm = export_dynamic(DyReluBlock(hyper=SigmoidHyper(32, 16)), torch.randn(2, 3, 32, 32))
    assert FoldDynamicReluPass().run(gm).rewrites == 0
    check_pass(lambda: MaxFormPass("where"), Fires(gm, images((16, 32, 40), batch=2), rewrites=1))


def test_unknown_form_is_refused():
    with pytest.raises(ValueError, match="unknown DY-ReLU form"):
        MaxFormPass("fastest")
