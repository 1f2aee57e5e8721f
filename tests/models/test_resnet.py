"""ResNet: timm's keys, the stage layout, and the trunk API the VT family builds on."""

from __future__ import annotations

import torch
import torch.nn as nn

from mobexport.models import create_model
from mobexport.models.resnet import RESNET_LAYERS, BasicBlock, ResNetTrunk, make_layer


def test_resnet18_has_timm_keys_and_shapes():
    sd = {k: tuple(v.shape) for k, v in create_model("resnet18").state_dict().items()}
    expected = {
        "conv1.weight": (64, 3, 7, 7),
        "bn1.running_mean": (64,),
        "layer1.0.conv1.weight": (64, 64, 3, 3),
        "layer1.1.bn2.num_batches_tracked": (),
        "layer2.0.conv1.weight": (128, 64, 3, 3),
        "layer2.0.downsample.0.weight": (128, 64, 1, 1),
        "layer2.0.downsample.1.running_var": (128,),
        "layer4.1.conv2.weight": (512, 512, 3, 3),
        "fc.weight": (1000, 512),
        "fc.bias": (1000,),
    }
    for key, shape in expected.items():
        assert sd.get(key) == shape, key
    assert not any(k.startswith("layer1.0.downsample") for k in sd)
    assert not any(k.startswith("layer2.1.downsample") for k in sd)


def test_resnet34_stage_depths():
    model = create_model("resnet34")
    assert [len(getattr(model, f"layer{i}")) for i in range(1, 5)] == [3, 4, 6, 3]


def test_make_layer_adds_a_shortcut_only_when_the_shape_changes():
    same = make_layer(BasicBlock, 64, 64, 2, stride=1)
    assert same[0].downsample is None
    down = make_layer(BasicBlock, 64, 128, 2, stride=2)
    assert isinstance(down[0].downsample, nn.Sequential) and down[1].downsample is None
    assert down(torch.randn(1, 64, 16, 16)).shape == (1, 128, 8, 8)


def test_trunk_is_resnet18_up_to_layer3_under_the_same_keys():
    """The VT family subclasses ResNetTrunk: a ResNet checkpoint's stem and stages 1-3 load by name."""
    resnet = create_model("resnet18")
    with torch.no_grad():
        for m in resnet.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    trunk = ResNetTrunk(RESNET_LAYERS[18][:3]).eval()
    assert trunk.out_channels == 256 and trunk.reduction == 16
    theirs = resnet.state_dict()
    ours = trunk.state_dict()
    assert set(ours) < set(theirs)
    trunk.load_state_dict({k: theirs[k] for k in ours}, strict=True)

    x = torch.randn(1, 3, 224, 160)
    with torch.no_grad():
        expected = resnet.layer3(resnet.layer2(resnet.layer1(resnet.maxpool(resnet.act1(resnet.bn1(resnet.conv1(x)))))))
        got = trunk.forward_features(x)
    assert got.shape == (1, 256, 14, 10)
    assert torch.equal(got, expected)
