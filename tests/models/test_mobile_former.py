"""Mobile-Former: release key names, bridge and DY-ReLU semantics, 26M shuffles.

Key names/shapes and counts below were read off the authors' release
(AAboys/MobileFormer); a checkpoint from it must load strictly.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from mobexport.models import create_model, get_spec, list_models, load_checkpoint
from mobexport.models.mobile_former import (
    ChannelShuffle,
    DynamicReLU,
    DynamicReLUHyper,
    Former2Mobile,
    Mobile2Former,
)

VARIANTS = [
    "mobile_former_26m",
    "mobile_former_52m",
    "mobile_former_96m",
    "mobile_former_151m",
    "mobile_former_214m",
    "mobile_former_294m",
    "mobile_former_508m",
]


@pytest.fixture(scope="module")
def mf52():
    torch.manual_seed(0)
    return create_model("mobile_former_52m")


@pytest.fixture(scope="module")
def mf26():
    torch.manual_seed(0)
    return create_model("mobile_former_26m")


def _macs(model: nn.Module, size: int) -> float:
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:  # no_grad on purpose: it once broke the counter's hooks
        model(torch.randn(1, 3, size, size))
    return counter.get_total_flops() / 2


def test_all_variants_registered():
    assert list_models("mobile_former_*") == sorted(VARIANTS)
    spec = get_spec("mobile_former_294m")
    assert spec.family == "mobile_former" and spec.checkpoint_format == "AAboys/MobileFormer"


# --------------------------------------------------------------------------- keys


# 52M: features.0 lite, .1 bottleneck(3, 12), .2 downsample(6|4, 24), ..., .8 bottleneck(6, 96).
RELEASE_KEYS_52M = {
    "tokens.weight": (3, 128),
    "stem.0.weight": (8, 3, 3, 3),
    "features.0.conv.0.weight": (24, 1, 3, 3),
    "features.0.conv.4.weight": (12, 24, 1, 1),
    "features.1.conv1.0.weight": (36, 12, 1, 1),
    "features.1.hyper1.hyper.0.weight": (32, 128),
    "features.1.hyper1.hyper.2.weight": (72, 32),
    "features.1.hyper2.hyper.2.bias": (72,),
    "features.1.local_global.alpha.0.weight": (12, 128),
    "features.1.local_global.q.weight": (12, 128),
    "features.1.local_global.proj.weight": (128, 12),
    "features.1.local_global.layer_norm.weight": (128,),
    "features.1.global_block.q.weight": (128, 128),
    "features.1.global_block.channel_mlp.weight": (128, 128),
    "features.1.global_block.ffn.0.weight": (256, 128),
    "features.1.global_block.ffn.2.weight": (128, 256),
    "features.1.global_block.ffn_norm.bias": (128,),
    "features.1.global_local.k.weight": (12, 128),
    "features.1.global_local.proj.weight": (12, 128),
    "features.2.conv1.0.weight": (72, 1, 3, 3),
    "features.2.hyper1.hyper.2.weight": (144, 32),
    "features.2.conv2.0.weight": (24, 72, 1, 1),
    "features.2.conv3.0.weight": (96, 1, 3, 3),
    "features.2.hyper3.hyper.2.weight": (192, 32),
    "features.2.conv4.1.running_var": (24,),
    "local_global.q.weight": (96, 128),
    "classifier.conv.1.weight": (576, 96, 1, 1),
    "classifier.fc.0.weight": (1024, 576 + 128),
    "classifier.fc.1.running_mean": (1024,),
    "classifier.classifier.1.weight": (1000, 1024),
}


def test_release_key_names_and_shapes(mf52):
    state = mf52.state_dict()
    shapes = {k: tuple(state[k].shape) for k in RELEASE_KEYS_52M if k in state}
    assert shapes == RELEASE_KEYS_52M
    # Only the first two activations of a block are dynamic: no hyper for the rest.
    assert not any(k.startswith(("features.1.hyper3.", "features.2.hyper2.", "features.2.hyper4.")) for k in state)


@pytest.mark.parametrize("name, n_keys", [("mobile_former_52m", 460), ("mobile_former_26m", 460)])
def test_state_dict_size_matches_release(name, n_keys):
    assert len(create_model(name).state_dict()) == n_keys


def test_classifier_prefix_and_num_classes():
    model = create_model("mobile_former_26m", num_classes=10)
    head = model.get_submodule(model.classifier_prefix)
    assert isinstance(head, nn.Linear) and head.out_features == 10
    with torch.no_grad():
        assert model(torch.randn(2, 3, 96, 96)).shape == (2, 10)


def test_checkpoint_with_other_class_count_leaves_head_fresh(tmp_path, mf52):
    path = tmp_path / "mf52.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in mf52.state_dict().items()}}, path)
    model = create_model("mobile_former_52m", num_classes=10)
    report = load_checkpoint(model, path)
    assert sorted(report.fresh_keys) == ["classifier.classifier.1.bias", "classifier.classifier.1.weight"]
    assert torch.equal(model.tokens.weight, mf52.tokens.weight)
    assert torch.equal(model.classifier.fc[0].weight, mf52.classifier.fc[0].weight)


# --------------------------------------------------------------------------- forward


def test_output_shape_and_resolutions(mf26):
    with torch.no_grad():
        assert mf26(torch.randn(2, 3, 224, 224)).shape == (2, 1000)
        assert mf26(torch.randn(1, 3, 96, 96)).shape == (1, 1000)
        assert mf26(torch.randn(1, 3, 128, 192)).shape == (1, 1000)


def test_batch_items_are_independent(mf52):
    # Tokens are per image after the first bridge: mixing up the batch and
    # token axes (the release keeps tokens as T x B x d) would leak across images.
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        together = mf52(x)
        alone = torch.cat([mf52(x[i : i + 1]) for i in range(2)])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)


def test_dy_relu_is_fed_the_updated_token0(mf52):
    seen = {}
    block = mf52.features[1]
    block.global_block.register_forward_hook(lambda m, i, o: seen.__setitem__("z", o))
    block.hyper1.register_forward_hook(lambda m, i, o: seen.__setitem__("t0", i[0]))
    block.hyper2.register_forward_hook(lambda m, i, o: seen.__setitem__("t0b", i[0]))
    with torch.no_grad():
        mf52(torch.randn(2, 3, 96, 96))
    assert torch.equal(seen["t0"], seen["z"][:, 0])
    assert torch.equal(seen["t0b"], seen["z"][:, 0])


# --------------------------------------------------------------------------- DY-ReLU


def test_dy_relu_fresh_hyper_at_zero_token_is_relu():
    hyper = create_model("mobile_former_52m").features[1].hyper1  # release init: zero biases
    h = hyper(torch.zeros(2, 128))
    assert h.shape == (2, 72, 1, 1)
    torch.testing.assert_close(h, torch.full_like(h, 0.5))  # a1 = 1, a2 = 0
    x = torch.randn(2, 36, 5, 5)
    torch.testing.assert_close(DynamicReLU()(x, h), F.relu(x))


def test_dy_relu_coefficient_halves_and_range():
    x = torch.randn(1, 4, 3, 3)
    act = DynamicReLU()
    ones, half, zeros = (torch.full((1, 4, 1, 1), v) for v in (1.0, 0.5, 0.0))
    # first half -> a1 = 2(h1 - 0.5) + 1, second half -> a2 = 2(h2 - 0.5)
    torch.testing.assert_close(act(x, torch.cat([ones, half], 1)), 2 * F.relu(x))  # a1 = 2, a2 = 0
    torch.testing.assert_close(act(x, torch.cat([half, ones], 1)), x)  # a1 = a2 = 1: identity
    torch.testing.assert_close(act(x, torch.cat([zeros, zeros], 1)), F.relu(-x))  # a1 = 0, a2 = -1
    # hsigmoid bounds the coefficients: a huge hyper input cannot push a1 above 2
    hyper = DynamicReLUHyper(8, 4)
    nn.init.constant_(hyper.hyper[2].bias, 100.0)
    torch.testing.assert_close(hyper(torch.zeros(1, 8)), torch.ones(1, 8, 1, 1))


# --------------------------------------------------------------------------- bridges


def _naive_mobile2former(m: Mobile2Former, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Per-head loop: head i owns channels [i*C/2, (i+1)*C/2), k = v = raw map."""
    c = x.shape[1]
    half = c // 2
    q = m.q(z)
    outs = []
    for i in range(2):
        sl = slice(i * half, (i + 1) * half)
        kv = x[:, sl].flatten(2)  # B, C/2, HW
        attn = torch.softmax(q[..., sl] @ kv / half**0.5, dim=-1)
        outs.append(attn @ kv.transpose(1, 2))
    out = torch.cat(outs, dim=-1) * 2 * F.hardsigmoid(m.alpha[0](z))
    return F.layer_norm(z + m.proj(out), (z.shape[-1],), m.layer_norm.weight, m.layer_norm.bias)


def test_mobile2former_matches_per_head_formula():
    m = Mobile2Former(channels=24, token_dim=16)
    for p in m.parameters():
        nn.init.normal_(p, std=0.3)
    x, z = torch.randn(2, 24, 5, 7), torch.randn(2, 3, 16)
    torch.testing.assert_close(m(x, z), _naive_mobile2former(m, x, z))


def test_bridges_treat_pixels_and_tokens_as_sets():
    m2f, f2m = Mobile2Former(24, 16), Former2Mobile(24, 16)
    for p in [*m2f.parameters(), *f2m.parameters()]:
        nn.init.normal_(p, std=0.3)
    x, z = torch.randn(2, 24, 4, 6), torch.randn(2, 5, 16)
    pix = torch.randperm(24)
    x_perm = x.flatten(2)[..., pix].reshape_as(x)
    # Mobile->Former pools over all pixels: invariant to their order.
    torch.testing.assert_close(m2f(x_perm, z), m2f(x, z))
    # Mobile<-Former: each pixel attends over tokens (invariant to token order) on its own.
    tok = torch.randperm(5)
    torch.testing.assert_close(f2m(x, z[:, tok]), f2m(x, z))
    torch.testing.assert_close(f2m(x_perm, z), f2m(x, z).flatten(2)[..., pix].reshape_as(x))


# --------------------------------------------------------------------------- 26M


def test_channel_shuffle_permutation():
    x = torch.arange(8.0).view(1, 8, 1, 1)
    assert ChannelShuffle(4)(x).flatten().tolist() == [0, 2, 4, 6, 1, 3, 5, 7]
    y = torch.randn(2, 12, 3, 3)
    torch.testing.assert_close(ChannelShuffle(3)(ChannelShuffle(4)(y)), y)  # g then n/g undoes it


def test_26m_grouped_pointwise_and_shuffles(mf26, mf52):
    bneck, down, head = mf26.features[1], mf26.features[2], mf26.classifier
    assert bneck.conv1[0].groups == 4 and bneck.conv1[2].groups == 4
    assert bneck.conv3[0].groups == 4 and bneck.conv3[2].groups == 4
    # After a depthwise expansion the release shuffles with one group per input channel.
    assert down.conv1[2].groups == 12 and down.conv3[2].groups == 24
    assert down.conv2[0].groups == 4 and down.conv4[0].groups == 4
    assert isinstance(head.conv[0], ChannelShuffle) and head.conv[0].groups == 4
    assert isinstance(mf26.features[0].conv[3], ChannelShuffle) and mf26.features[0].conv[3].groups == 8
    assert not any(isinstance(m, ChannelShuffle) for m in mf52.modules())
    # Same keys as 52M, fewer weights in the grouped 1x1 convs.
    assert mf26.state_dict().keys() == mf52.state_dict().keys()
    assert mf26.features[1].conv1[0].weight.shape == (36, 3, 1, 1)


def test_26m_macs_fast(mf26):
    spec = get_spec("mobile_former_26m")
    assert _macs(mf26, 224) == pytest.approx(spec.reference_macs, rel=0.05)


# --------------------------------------------------------------------------- slow


@pytest.mark.slow
@pytest.mark.parametrize("name", VARIANTS)
def test_params_and_macs_match_reference(name):
    model, spec = create_model(name), get_spec(name)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(spec.reference_params, rel=0.01)
    assert _macs(model, 224) == pytest.approx(spec.reference_macs, rel=0.05)
    for size in (96, 224):
        assert model(torch.randn(1, 3, size, size)).shape == (1, 1000)


@pytest.mark.slow
def test_26m_at_1024(mf26):
    with torch.no_grad():
        assert mf26(torch.randn(1, 3, 1024, 1024)).shape == (1, 1000)


@pytest.mark.slow
def test_export_dynamic_hw_294m():
    model = create_model("mobile_former_294m")
    h, w = torch.export.Dim("h32", min=3, max=32), torch.export.Dim("w32", min=3, max=32)
    ep = torch.export.export(model, (torch.randn(1, 3, 224, 224),), dynamic_shapes={"x": {2: 32 * h, 3: 32 * w}})
    exported = ep.module()
    for size in [(96, 96), (160, 288)]:
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            torch.testing.assert_close(exported(x), model(x), rtol=1e-4, atol=1e-4)
