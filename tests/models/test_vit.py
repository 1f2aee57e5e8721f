"""ViT/DeiT: timm's exact key set, resolution handling (built grid, on-the-fly resize,
resize on load) and the position-table resize under torch.export with dynamic H/W."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.export import Dim

from mobexport.errors import ResolutionError
from mobexport.models import create_model, get_spec, load_checkpoint
from mobexport.models.vit import VisionTransformer, resample_pos_embed

DYNAMIC = {"x": {2: 16 * Dim("h16", min=6, max=64), 3: 16 * Dim("w16", min=6, max=64)}}


def small_vit(img_size: int = 224) -> VisionTransformer:
    torch.manual_seed(0)
    model = VisionTransformer(embed_dim=32, depth=2, num_heads=2, img_size=img_size, num_classes=10).eval()
    with torch.no_grad():  # a position table large enough that a wrong resize shows in the output
        model.pos_embed.normal_(0, 1.0)
    return model


def timm_vit_keys(depth: int) -> set[str]:
    keys = {"cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias",
            "norm.weight", "norm.bias", "head.weight", "head.bias"}
    for i in range(depth):
        for sub in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"):
            keys |= {f"blocks.{i}.{sub}.weight", f"blocks.{i}.{sub}.bias"}
    return keys


def test_deit_tiny_has_exactly_timms_keys_and_shapes():
    sd = create_model("deit_tiny_patch16_224").state_dict()
    assert set(sd) == timm_vit_keys(12)
    expected = {
        "cls_token": (1, 1, 192),
        "pos_embed": (1, 197, 192),
        "patch_embed.proj.weight": (192, 3, 16, 16),
        "blocks.0.attn.qkv.weight": (576, 192),
        "blocks.0.attn.proj.weight": (192, 192),
        "blocks.11.mlp.fc1.weight": (768, 192),
        "blocks.11.mlp.fc2.weight": (192, 768),
        "head.weight": (1000, 192),
    }
    for key, shape in expected.items():
        assert tuple(sd[key].shape) == shape, key


def test_resolution_range_is_multiples_of_16():
    spec = get_spec("deit_tiny_patch16_224")
    assert spec.resolutions.stride == 16 and spec.resolutions.min == 96 and spec.resolutions.max == 1024
    assert create_model("deit_tiny_patch16_224", resolution=208).pos_embed.shape == (1, 1 + 13 * 13, 192)
    with pytest.raises(ResolutionError):
        create_model("deit_tiny_patch16_224", resolution=200)


def test_resize_to_the_same_grid_is_exact():
    """Exporting with dynamic shapes always takes the resize path: at the built grid it must be the identity."""
    pos = small_vit().pos_embed.detach()
    assert torch.equal(resample_pos_embed(pos, (14, 14), (14, 14)), pos)


def test_checkpoint_for_224_loads_into_a_model_built_at_384(tmp_path):
    source = create_model("deit_tiny_patch16_224")
    with torch.no_grad():
        source.pos_embed.normal_(0, 1.0)
    path = tmp_path / "deit_tiny_224.pth"
    torch.save({"model": source.state_dict()}, path)

    target = create_model("deit_tiny_patch16_224", resolution=384)
    report = load_checkpoint(target, path, "deit_tiny_patch16_224")
    assert "pos_embed resized 14x14 -> 24x24" in report.notes
    assert target.pos_embed.shape == (1, 1 + 24 * 24, 192)
    assert torch.equal(target.pos_embed[:, 0], source.pos_embed[:, 0])  # class token entry untouched
    assert torch.equal(target.blocks[3].attn.qkv.weight, source.blocks[3].attn.qkv.weight)
    with torch.no_grad():
        y = target(torch.randn(1, 3, 384, 384))
    assert y.shape == (1, 1000) and torch.isfinite(y).all()


def test_resize_on_load_is_timms_antialiased_bicubic(tmp_path):
    source = small_vit(224)
    path = tmp_path / "small_224.pth"
    torch.save(source.state_dict(), path)
    model = small_vit(320)
    assert load_checkpoint(model, path).notes == ["pos_embed resized 14x14 -> 20x20"]
    grid = source.pos_embed[:, 1:].detach().reshape(1, 14, 14, -1).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(20, 20), mode="bicubic", align_corners=False, antialias=True)
    assert torch.allclose(model.pos_embed[:, 1:].detach(), expected.permute(0, 2, 3, 1).reshape(1, 400, -1))


def test_on_the_fly_resize_is_plain_bicubic_of_the_patch_entries():
    built_224 = small_vit(224)
    built_320 = small_vit(320)
    with torch.no_grad():
        built_320.load_state_dict(built_224.state_dict() | {
            "pos_embed": resample_pos_embed(built_224.pos_embed, (14, 14), (20, 20), antialias=False)})
        x = torch.randn(1, 3, 320, 320)
        assert torch.allclose(built_224(x), built_320(x), rtol=1e-5, atol=1e-6)


def test_shrinking_checkpoint_is_resized_too(tmp_path):
    path = tmp_path / "small_224.pth"
    torch.save(small_vit(224).state_dict(), path)
    model = small_vit(96)
    assert load_checkpoint(model, path).notes == ["pos_embed resized 14x14 -> 6x6"]
    with torch.no_grad():
        assert torch.isfinite(model(torch.randn(1, 3, 96, 96))).all()


def test_on_the_fly_resize_uses_the_stored_table():
    """An input off the built grid must read the (resized) table, not ignore it."""
    model = small_vit(224)
    x = torch.randn(1, 3, 320, 320)
    with torch.no_grad():
        y = model(x)
        model.pos_embed[:, 1:] += torch.randn_like(model.pos_embed[:, 1:])
        assert not torch.allclose(y, model(x))


def test_export_with_dynamic_hw_resizes_pos_embed():
    model = small_vit(224)
    with torch.no_grad():
        program = torch.export.export(model, (torch.randn(1, 3, 224, 224),), dynamic_shapes=DYNAMIC)
    targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert any("upsample_bicubic2d" in t for t in targets), targets
    for h, w in [(96, 96), (224, 224), (336, 160), (512, 512)]:
        x = torch.randn(1, 3, h, w)
        with torch.no_grad():
            assert torch.allclose(program.module()(x), model(x), rtol=1e-4, atol=1e-5), (h, w)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["deit_base_patch16_224", "vit_base_patch16_224"])
def test_base_has_exactly_timms_keys(name):
    with torch.device("meta"):
        sd = create_model(name).state_dict()
    assert set(sd) == timm_vit_keys(12)
    assert tuple(sd["blocks.11.attn.qkv.weight"].shape) == (2304, 768)


def test_vit_base_uses_its_own_preprocessing():
    assert get_spec("vit_base_patch16_224").mean == (0.5, 0.5, 0.5)
    assert get_spec("deit_base_patch16_224").interpolation == "bicubic"
