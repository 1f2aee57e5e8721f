"""VT-ResNet: 16 tokens, tokenizer/projector semantics, timm trunk keys, dynamic export."""

from __future__ import annotations

import pytest
import torch
from torch.export import Dim

from mobexport.models import create_model, get_spec, list_models
from mobexport.models.visual_transformer import (
    FilterTokenizer,
    Projector,
    RecurrentTokenizer,
    VTResNet,
)


@pytest.fixture(scope="module")
def vt18():
    torch.manual_seed(0)
    return create_model("vt_resnet18")


def test_variants_registered():
    assert list_models("vt_*") == ["vt_resnet18", "vt_resnet34"]
    spec = get_spec("vt_resnet34")
    assert spec.family == "visual_transformer" and spec.default_resolution == 224
    assert spec.checkpoint_format == "mobexport:vt_resnet (trunk in timm resnet keys)"


@pytest.mark.parametrize("size", [224, 160, 320])
def test_sixteen_tokens_of_1024_at_any_resolution(vt18, size):
    with torch.no_grad():
        tokens = vt18.forward_tokens(torch.randn(2, 3, size, size))
    assert tokens.shape == (2, 16, 1024)


@pytest.mark.parametrize("name, modules", [("vt_resnet18", 2), ("vt_resnet34", 3)])
def test_layer4_blocks_become_as_many_vt_modules(name, modules):
    with torch.device("meta"):
        model = create_model(name)
    assert len(model.vt) == modules
    assert isinstance(model.vt[0].tokenizer, FilterTokenizer)
    assert all(isinstance(m.tokenizer, RecurrentTokenizer) for m in model.vt[1:])
    assert all(isinstance(m.projector, Projector) for m in model.vt[:-1])
    assert model.vt[-1].projector is None  # its output feature map would never be read
    assert not any(k.startswith(("layer4.", "fc.")) for k in model.state_dict())
    assert model.classifier_prefix == "head" and model.head.in_features == 1024


def test_trunk_keys_are_timm_resnet_keys(vt18):
    torch.manual_seed(1)
    resnet = create_model("resnet18")
    theirs = resnet.state_dict()
    ours = vt18.state_dict()
    trunk = [k for k in ours if not k.startswith(("vt.", "head."))]
    assert trunk and all(k.startswith(("conv1.", "bn1.", "layer1.", "layer2.", "layer3.")) for k in trunk)
    assert all(theirs[k].shape == ours[k].shape for k in trunk)
    # A timm ResNet-18 checkpoint initialises the whole trunk by name.
    fresh = VTResNet(18, ffn_dim=1088).eval()
    missing, unexpected = fresh.load_state_dict(theirs, strict=False)
    assert all(k.startswith(("vt.", "head.")) for k in missing)
    assert all(k.startswith(("layer4.", "fc.")) for k in unexpected)
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        expected = resnet.layer3(resnet.layer2(resnet.layer1(resnet.maxpool(resnet.act1(resnet.bn1(resnet.conv1(x)))))))
        assert torch.equal(fresh.forward_features(x), expected)


def test_vt_key_names_are_stable(vt18):
    keys = {k for k in vt18.state_dict() if k.startswith(("vt.", "head."))}
    assert keys == {
        "vt.0.tokenizer.filters.weight", "vt.0.tokenizer.value.weight",
        "vt.0.transformer.key.weight", "vt.0.transformer.query.weight",
        "vt.0.transformer.ffn1.weight", "vt.0.transformer.ffn2.weight",
        "vt.0.projector.query.weight", "vt.0.projector.key.weight", "vt.0.projector.value.weight",
        "vt.1.tokenizer.token_to_filters.weight", "vt.1.tokenizer.value.weight",
        "vt.1.transformer.key.weight", "vt.1.transformer.query.weight",
        "vt.1.transformer.ffn1.weight", "vt.1.transformer.ffn2.weight",
        "head.weight", "head.bias",
    }


def test_filter_tokenizer_pools_pixels_with_per_token_spatial_softmax():
    torch.manual_seed(0)
    tok = FilterTokenizer(channels=8, token_dim=12, num_tokens=4)
    x = torch.randn(2, 30, 8)
    weights = tok.filters(x).softmax(dim=1)  # over the 30 pixels
    expected = tok.value(torch.einsum("bnl,bnc->blc", weights, x))
    assert torch.allclose(tok(x), expected, atol=1e-6)
    # Uniform pixels: every token is that pixel, whatever the attention.
    same = torch.randn(1, 1, 8).expand(1, 30, 8)
    assert torch.allclose(tok(same), tok.value(same[:, :4]), atol=1e-5)


def test_recurrent_tokenizer_depends_on_previous_tokens():
    torch.manual_seed(0)
    tok = RecurrentTokenizer(channels=8, token_dim=12)
    x = torch.randn(1, 30, 8)
    a, b = torch.randn(1, 4, 12), torch.randn(1, 4, 12)
    assert tok(x, a).shape == (1, 4, 12)
    assert not torch.allclose(tok(x, a), tok(x, b))


def test_projector_is_residual_over_pixels():
    torch.manual_seed(0)
    proj = Projector(channels=8, token_dim=12)
    x, tokens = torch.randn(2, 30, 8), torch.randn(2, 4, 12)
    with torch.no_grad():
        proj.value.weight.zero_()
    assert torch.equal(proj(x, tokens), x)


@pytest.mark.parametrize("name", ["vt_resnet18", pytest.param("vt_resnet34", marks=pytest.mark.slow)])
def test_dynamic_export_matches_eager(name):
    torch.manual_seed(0)
    model = create_model(name)
    h, w = Dim("h32", min=2, max=32), Dim("w32", min=2, max=32)
    program = torch.export.export(
        model, (torch.randn(1, 3, 224, 224),), dynamic_shapes={"x": {2: 32 * h, 3: 32 * w}}
    )
    exported = program.module()
    with torch.no_grad():
        for hw in [(224, 224), (160, 160), (96, 288)]:
            x = torch.randn(1, 3, *hw)
            assert torch.allclose(exported(x), model(x), atol=1e-4, rtol=0), hw
