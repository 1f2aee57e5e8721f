"""PoolFormer: the pooling mixer at borders, timm's keys, the sail-sg remap, and
``count_include_pad=False`` pooling through torch.export (dynamic H/W) and ONNX."""

from __future__ import annotations

import re

import pytest
import torch
from torch.export import Dim

from mobexport.models import create_model, load_checkpoint
from mobexport.models.poolformer import Pooling, PoolFormer

DYNAMIC = {"x": {2: 32 * Dim("h32", min=3, max=32), 3: 32 * Dim("w32", min=3, max=32)}}


def tiny() -> PoolFormer:
    return PoolFormer((1, 1, 1, 1), (8, 16, 24, 32), layer_scale=0.5, num_classes=10).eval()


def test_mixer_is_zero_on_a_constant_input_including_borders():
    # count_include_pad=True would average zeros in at the borders and give -x/3 (edges), -5x/9 (corners)
    x = torch.full((1, 2, 5, 7), 3.0)
    assert torch.equal(Pooling()(x), torch.zeros_like(x))


def test_mixer_averages_only_in_image_neighbours():
    x = torch.randn(1, 1, 4, 4)
    y = Pooling()(x)
    assert torch.allclose(y[0, 0, 0, 0], x[0, 0, :2, :2].mean() - x[0, 0, 0, 0])  # corner: 4 neighbours
    assert torch.allclose(y[0, 0, 0, 1], x[0, 0, :2, :3].mean() - x[0, 0, 0, 1])  # edge: 6
    assert torch.allclose(y[0, 0, 1, 1], x[0, 0, :3, :3].mean() - x[0, 0, 1, 1])  # interior: 9


def test_s12_has_timm_keys_and_shapes():
    sd = {k: tuple(v.shape) for k, v in create_model("poolformer_s12").state_dict().items()}
    expected = {
        "stem.conv.weight": (64, 3, 7, 7),
        "stem.conv.bias": (64,),
        "stages.0.blocks.0.norm1.weight": (64,),
        "stages.0.blocks.0.layer_scale1.scale": (64,),
        "stages.0.blocks.1.mlp.fc1.weight": (256, 64, 1, 1),
        "stages.0.blocks.1.mlp.fc2.bias": (64,),
        "stages.1.downsample.conv.weight": (128, 64, 3, 3),
        "stages.2.blocks.5.layer_scale2.scale": (320,),
        "stages.3.downsample.conv.bias": (512,),
        "head.norm.weight": (512,),
        "head.fc.weight": (1000, 512),
    }
    for key, shape in expected.items():
        assert sd.get(key) == shape, key
    assert not any(k.startswith("stages.0.downsample") for k in sd)
    assert len(sd) == 2 + 3 * 2 + 12 * 10 + 4  # stem, downsamplings, blocks, head: nothing else


@pytest.mark.parametrize("name, value", [("poolformer_s12", 1e-5), ("poolformer_s36", 1e-6)])
def test_layer_scale_init(name, value):
    model = create_model(name)
    scales = [p for k, p in model.named_parameters() if k.endswith(".scale")]
    assert scales and all(torch.all(s == value) for s in scales)


def sail_key(ours: str) -> str:
    """Our (timm) key -> the key the original sail-sg code uses, written independently of the model's remap."""
    if ours.startswith("stem.conv."):
        return "patch_embed.proj." + ours[len("stem.conv."):]
    if m := re.match(r"stages\.(\d)\.downsample\.conv\.(.*)", ours):
        return f"network.{2 * int(m[1]) - 1}.proj.{m[2]}"
    if m := re.match(r"stages\.(\d)\.blocks\.(\d+)\.(.*)", ours):
        rest = m[3].replace("layer_scale1.scale", "layer_scale_1").replace("layer_scale2.scale", "layer_scale_2")
        return f"network.{2 * int(m[1])}.{m[2]}.{rest}"
    return {"head.norm.weight": "norm.weight", "head.norm.bias": "norm.bias",
            "head.fc.weight": "head.weight", "head.fc.bias": "head.bias"}[ours]


def test_sail_sg_checkpoint_loads_through_the_remap(tmp_path):
    source = create_model("poolformer_s12")
    with torch.no_grad():
        for p in source.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    path = tmp_path / "poolformer_s12.pth.tar"
    torch.save({"model": {sail_key(k): v for k, v in source.state_dict().items()}}, path)
    target = create_model("poolformer_s12")
    report = load_checkpoint(target, path, "poolformer_s12")
    assert any("sail-sg" in note for note in report.notes)
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        assert torch.equal(source(x), target(x))


def test_timm_checkpoint_loads_without_notes(tmp_path):
    source = tiny()
    path = tmp_path / "timm.pth"
    torch.save(source.state_dict(), path)
    assert load_checkpoint(tiny(), path).notes == []


def test_export_with_dynamic_hw_keeps_border_handling():
    model = tiny()
    with torch.no_grad():
        program = torch.export.export(model, (torch.randn(1, 3, 224, 224),), dynamic_shapes=DYNAMIC)
        for h, w in [(96, 96), (160, 96), (320, 224)]:  # last-stage grids 3x3, 5x3, 10x7: borders dominate
            x = torch.randn(1, 3, h, w)
            assert torch.allclose(program.module()(x), model(x), rtol=1e-5, atol=1e-6)


def test_onnx_export_with_dynamic_hw(tmp_path):
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    model = tiny()
    path = tmp_path / "tiny_poolformer.onnx"
    torch.onnx.export(model, (torch.randn(1, 3, 224, 224),), str(path), dynamic_shapes=DYNAMIC, dynamo=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    for h, w in [(96, 96), (160, 288)]:
        x = torch.randn(1, 3, h, w)
        with torch.no_grad():
            expected = model(x).numpy()
        got = session.run(None, {feed: x.numpy()})[0]
        assert got.shape == expected.shape
        assert abs(got - expected).max() < 1e-4


@pytest.mark.slow
def test_m36_shapes_and_layer_scale():
    model = create_model("poolformer_m36")
    sd = model.state_dict()
    assert tuple(sd["stem.conv.weight"].shape) == (96, 3, 7, 7)
    assert tuple(sd["stages.3.blocks.5.mlp.fc1.weight"].shape) == (3072, 768, 1, 1)
    assert torch.all(sd["stages.0.blocks.0.layer_scale1.scale"] == 1e-6)
