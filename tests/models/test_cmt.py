"""CMT: the release's key layout, and the resolution-dependent relative position bias.

Key counts, table shapes and hidden widths below were read off the authors'
release (huawei-noah/Efficient-AI-Backbones, cmt_pytorch/cmt.py, built with
``img_size`` = the training resolution, as its train.py does); a checkpoint
from it must load strictly.
"""

from __future__ import annotations

import pytest
import torch
from torch.export import Dim

from mobexport.errors import ResolutionError
from mobexport.models import create_model, get_spec, list_models, load_checkpoint
from mobexport.models.cmt import CMT, cmt_ti, resize_relative_pos

UPSAMPLE = torch.ops.aten.upsample_bicubic2d.vec

# name: (state_dict entries, relative_pos_a..d shapes, IRFFN hidden in stage a / d)
RELEASE = {
    "cmt_ti": (708, [(1, 1600, 25), (2, 400, 25), (4, 100, 25), (8, 25, 25)], (165, 1324)),
    "cmt_xs": (911, [(1, 2304, 36), (2, 576, 36), (4, 144, 36), (8, 36, 36)], (196, 1568)),
    "cmt_s": (1079, [(1, 3136, 49), (2, 784, 49), (4, 196, 49), (8, 49, 49)], (256, 2048)),
    "cmt_b": (1366, [(1, 4096, 64), (2, 1024, 64), (4, 256, 64), (8, 64, 64)], (304, 2432)),
}
HEAVY = {"cmt_s", "cmt_b"}


def tiny(resolution: int = 128) -> CMT:
    """Same code paths as the zoo variants at a fraction of the cost."""
    torch.manual_seed(0)
    return CMT(dims=(8, 16, 32, 64), depths=(1, 1, 1, 1), stem_chs=8, mlp_ratio=2.0, resolution=resolution).eval()


@pytest.fixture(scope="module")
def ti():
    torch.manual_seed(0)
    return create_model("cmt_ti")


def test_variants_registered():
    assert list_models("cmt_*") == ["cmt_b", "cmt_s", "cmt_ti", "cmt_xs"]
    assert [get_spec(n).default_resolution for n in ("cmt_ti", "cmt_xs", "cmt_s", "cmt_b")] == [160, 192, 224, 256]
    assert get_spec("cmt_ti").checkpoint_format == "huawei-noah/Efficient-AI-Backbones:cmt_pytorch"


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in RELEASE])
def test_state_dict_matches_release_layout(name):
    entries, tables, (hidden_a, hidden_d) = RELEASE[name]
    with torch.device("meta"):
        sd = create_model(name).state_dict()
    assert len(sd) == entries
    assert [tuple(sd[f"relative_pos_{s}"].shape) for s in "abcd"] == tables
    assert sd["blocks_a.0.mlp.conv1.0.weight"].shape[0] == hidden_a
    assert sd["blocks_d.0.mlp.conv1.0.weight"].shape[0] == hidden_d


def test_release_key_names(ti):
    keys = set(ti.state_dict())
    for key in [
        "stem_conv1.weight", "stem_norm1.running_var", "stem_conv3.bias", "stem_norm3.num_batches_tracked",
        "patch_embed_a.proj.weight", "patch_embed_d.norm.bias",
        "blocks_a.0.proj.weight", "blocks_a.0.norm1.weight", "blocks_a.1.norm2.bias",
        "blocks_a.0.attn.q.bias", "blocks_a.0.attn.k.weight", "blocks_a.0.attn.v.weight", "blocks_a.0.attn.proj.bias",
        "blocks_a.0.attn.sr.0.weight", "blocks_c.9.attn.sr.1.running_mean",
        "blocks_b.1.mlp.conv1.0.bias", "blocks_b.1.mlp.conv1.2.running_var", "blocks_b.1.mlp.proj.weight",
        "blocks_b.1.mlp.proj_bn.weight", "blocks_b.1.mlp.conv2.0.weight", "blocks_b.1.mlp.conv2.1.bias",
        "_fc.weight", "_bn.running_mean", "head.weight", "head.bias",
    ]:
        assert key in keys, key
    assert not any(k.startswith("blocks_d.0.attn.sr") for k in keys)  # stage d has no K/V reduction
    assert ti.classifier_prefix == "head"


def test_resize_reads_the_table_as_two_grids():
    # A bias that depends only on the query's row must keep that property:
    # no mixing across query columns or across keys (a flat Nq x Nk resize would).
    rows = torch.arange(8.0).repeat_interleave(8)  # query (y, x) on an 8x8 grid -> y
    table = rows[None, :, None].expand(2, 64, 16).contiguous()  # 4x4 key grid
    out = resize_relative_pos(table, (8, 8), (4, 4), (12, 12), (6, 6))
    assert out.shape == (2, 144, 36)
    grid = out.reshape(2, 12, 12, 36)
    assert torch.allclose(grid, grid[:, :, :1, :1].expand_as(grid), atol=1e-5)
    assert (grid[0, 1:, 0, 0] > grid[0, :-1, 0, 0]).all()  # still increasing down the rows


def test_same_grid_is_left_alone():
    table = torch.randn(2, 64, 16)
    assert resize_relative_pos(table, (8, 8), (4, 4), (8, 8), (4, 4)) is table


def test_checkpoint_made_at_another_resolution_is_resized(tmp_path):
    torch.manual_seed(0)
    source = create_model("cmt_ti", resolution=224)
    path = tmp_path / "cmt_ti_224.pth"
    torch.save({"model": source.state_dict()}, path)

    target = create_model("cmt_ti")  # built at 160
    report = load_checkpoint(target, path, "cmt_ti")
    assert report.notes == [
        "relative_pos_a resized 1x3136x49 -> 1x1600x25 (grids 56x56/7x7 -> 40x40/5x5, bicubic)",
        "relative_pos_b resized 2x784x49 -> 2x400x25 (grids 28x28/7x7 -> 20x20/5x5, bicubic)",
        "relative_pos_c resized 4x196x49 -> 4x100x25 (grids 14x14/7x7 -> 10x10/5x5, bicubic)",
        "relative_pos_d resized 8x49x49 -> 8x25x25 (grids 7x7/7x7 -> 5x5/5x5, bicubic)",
    ]
    assert target.relative_pos_a.shape == (1, 1600, 25)
    x = torch.randn(2, 3, 160, 160)
    with torch.no_grad():
        y = target(x)
        # Resizing at load and resizing at run time are one and the same map.
        assert torch.allclose(y, source(x), atol=1e-4, rtol=1e-4)
    assert torch.isfinite(y).all()


def test_forward_off_the_build_grid(ti):
    with torch.no_grad():
        for h, w in [(160, 160), (224, 224), (96, 128)]:
            y = ti(torch.randn(1, 3, h, w))
            assert y.shape == (1, 1000) and torch.isfinite(y).all()


def test_static_export_at_build_resolution_uses_tables_directly():
    program = torch.export.export(tiny(128), (torch.randn(1, 3, 128, 128),))
    assert not any(n.target is UPSAMPLE for n in program.graph.nodes)


def _dynamic_export(model: torch.nn.Module, size: int):
    h, w = Dim("h32", min=2, max=32), Dim("w32", min=2, max=32)
    return torch.export.export(model, (torch.randn(1, 3, size, size),), dynamic_shapes={"x": {2: 32 * h, 3: 32 * w}})


def test_dynamic_export_resizes_bias_in_graph_and_matches_eager():
    model = tiny(128)
    program = _dynamic_export(model, 128)
    assert sum(n.target is UPSAMPLE for n in program.graph.nodes) == 8  # query + key grid, 4 stages
    exported = program.module()
    with torch.no_grad():
        for h, w in [(128, 128), (96, 96), (224, 224), (64, 160)]:
            x = torch.randn(1, 3, h, w)
            assert torch.allclose(exported(x), model(x), atol=1e-4, rtol=0), (h, w)


@pytest.mark.slow
def test_dynamic_export_of_cmt_ti_matches_eager(ti):
    exported = _dynamic_export(ti, 160).module()
    with torch.no_grad():
        for size in (160, 224):
            x = torch.randn(1, 3, size, size)
            assert torch.allclose(exported(x), ti(x), atol=1e-4, rtol=0), size


@pytest.mark.parametrize("resolution", [100, 32, 1056])
def test_factory_refuses_resolutions_outside_range(resolution):
    with pytest.raises(ResolutionError):
        cmt_ti(resolution=resolution)
