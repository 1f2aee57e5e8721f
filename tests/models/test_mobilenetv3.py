"""MobileNetV3: timm's keys and shapes, its channel rounding, and a BN-foldable layout."""

from __future__ import annotations

import pytest
import torch
import torch.fx
import torch.nn as nn

from mobexport.models import create_model
from mobexport.models.mobilenetv3 import make_divisible


@pytest.mark.parametrize(
    "value, expected",
    [(4, 8), (12, 16), (18, 24), (88.08, 88), (184, 184), (720, 720), (36, 40)],
)
def test_make_divisible_rounds_like_timm(value, expected):
    # nearest multiple of 8, at least 8, and never more than 10% below the value
    assert make_divisible(value) == expected


def shapes(name):
    return {k: tuple(v.shape) for k, v in create_model(name).state_dict().items()}


def test_large_has_timm_keys_and_shapes():
    sd = shapes("mobilenet_v3_large_100")
    expected = {
        "conv_stem.weight": (16, 3, 3, 3),
        "bn1.running_var": (16,),
        "blocks.0.0.conv_dw.weight": (16, 1, 3, 3),
        "blocks.0.0.conv_pw.weight": (16, 16, 1, 1),
        "blocks.1.0.conv_pw.weight": (64, 16, 1, 1),
        "blocks.1.1.conv_pw.weight": (72, 24, 1, 1),
        "blocks.2.0.conv_dw.weight": (72, 1, 5, 5),
        "blocks.2.0.se.conv_reduce.weight": (24, 72, 1, 1),  # 72 / 4 = 18 -> 24
        "blocks.2.0.se.conv_expand.bias": (72,),
        "blocks.2.0.conv_pwl.weight": (40, 72, 1, 1),
        "blocks.3.2.conv_pw.weight": (184, 80, 1, 1),  # expansion 2.3
        "blocks.4.0.se.conv_reduce.weight": (120, 480, 1, 1),
        "blocks.5.2.bn3.num_batches_tracked": (),
        "blocks.6.0.conv.weight": (960, 160, 1, 1),
        "blocks.6.0.bn1.weight": (960,),
        "conv_head.weight": (1280, 960, 1, 1),
        "conv_head.bias": (1280,),
        "classifier.weight": (1000, 1280),
    }
    for key, shape in expected.items():
        assert sd.get(key) == shape, key
    assert not any(".se." in k for k in sd if k.startswith(("blocks.0.", "blocks.1.", "blocks.3.")))


def test_small_se_squeezes_16_channels_to_8_not_4():
    sd = shapes("mobilenet_v3_small_100")
    assert sd["blocks.0.0.se.conv_reduce.weight"] == (8, 16, 1, 1)
    assert sd["blocks.1.1.conv_pw.weight"] == (88, 24, 1, 1)  # 24 * 3.67 = 88.08
    assert sd["blocks.5.0.conv.weight"] == (576, 96, 1, 1)
    assert sd["conv_head.weight"] == (1024, 576, 1, 1)


def test_width_075_rounds_channels_but_not_the_stem_or_head():
    sd = shapes("mobilenet_v3_large_075")
    assert sd["conv_stem.weight"] == (16, 3, 3, 3)  # 12 rounds up to 16
    assert sd["blocks.1.0.conv_pwl.weight"] == (24, 64, 1, 1)  # 24 * 0.75 = 18 -> 24
    assert sd["blocks.6.0.conv.weight"] == (720, 120, 1, 1)
    assert sd["conv_head.weight"] == (1280, 720, 1, 1)


@pytest.mark.parametrize("name, per_stage", [("mobilenet_v3_large_100", [1, 2, 3, 4, 2, 3, 1]),
                                             ("mobilenet_v3_small_100", [1, 2, 3, 2, 3, 1])])
def test_stage_layout(name, per_stage):
    model = create_model(name)
    assert [len(stage) for stage in model.blocks] == per_stage


def test_relu_then_hardswish_in_large():
    model = create_model("mobilenet_v3_large_100")
    assert isinstance(model.blocks[2][0].act1, nn.ReLU)
    assert isinstance(model.blocks[3][0].act1, nn.Hardswish)
    assert isinstance(model.blocks[2][0].se.gate, nn.Hardsigmoid)


def test_every_batchnorm_directly_follows_a_conv_of_its_width():
    """The BN-folding pass needs conv -> BN with nothing in between."""
    model = create_model("mobilenet_v3_small_075")
    traced = torch.fx.symbolic_trace(model)
    modules = dict(model.named_modules())
    bns = [n for n in traced.graph.nodes if n.op == "call_module" and isinstance(modules[n.target], nn.BatchNorm2d)]
    assert len(bns) == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    for node in bns:
        producer = node.args[0]
        assert producer.op == "call_module" and isinstance(modules[producer.target], nn.Conv2d), node.target
        assert modules[producer.target].out_channels == modules[node.target].num_features
