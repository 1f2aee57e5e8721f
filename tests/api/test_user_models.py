"""Models outside the zoo, written as users write them, export to ONNX and ExecuTorch with parity.

From the Python API (an ``nn.Module`` instance) and from the command line
(``--model path/to/file.py:build``); the manifest records where each came from.
"""

from __future__ import annotations

import json

import pytest

import mobexport
from mobexport.cli import main
from mobexport.export.targets import get_target

from .conftest import MODELS, USER_MODELS, load_factory, reference

TARGETS = ("onnx", "executorch")


def check_manifest(manifest, size: str, outputs: int) -> None:
    assert manifest.resolution["size"] == size
    assert manifest.resolution["input_shape"] == [1, 3, *map(int, size.split("x"))]
    assert manifest.model["family"] == "user"
    assert manifest.parity and all(p["passed"] for p in manifest.parity)
    assert len(manifest.parity[0]["outputs"]) == outputs
    assert manifest.macs["total_macs"] > 0 and manifest.params > 0


@pytest.fixture(scope="module")
def exported(module_tmp):
    """One API export per (model, target), shared by the tests below."""
    done = {}

    def export(name: str, target: str):
        if (name, target) not in done:
            done[name, target] = mobexport.export(load_factory(name)(), target, resolution=MODELS[name],
                                                  out=module_tmp / "api", parity_samples=2)
        return done[name, target]

    return export


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_python_api_exports_a_user_module_with_parity(name, target, module_tmp, exported):
    import numpy as np

    size = MODELS[name]
    artifact = exported(name, target)
    outputs = 2 if name == "two_heads" else 1
    check_manifest(artifact.manifest, size, outputs)
    assert artifact.manifest.model["source"]["kind"] == "module"
    assert artifact.directory == module_tmp / "api" / artifact.manifest.model["name"] / target
    h, w = map(int, size.split("x"))
    with mobexport.load(artifact.directory) as model:
        result = model(np.zeros((1, 3, h, w), np.float32))
    assert (len(result) == 2 and result[1].shape[2:] == (h // 4, w // 4)) if outputs == 2 else result.shape == (1, 10)


@pytest.mark.parametrize("target", ["onnx", pytest.param("executorch", marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_cli_exports_a_user_model_file_with_parity(name, target, module_tmp, capsys):
    size = MODELS[name]
    out = module_tmp / "cli"
    assert main(["--model", reference(name), "--target", target, "--resolution", size, "--out", str(out),
                 "--parity-samples", "2", "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    source = manifest["model"]["source"]
    assert source["kind"] == "file" and source["factory"] == "build" and len(source["sha256"]) == 64
    assert manifest["model"]["name"] == "build"
    assert (out / "build" / target / "manifest.json").is_file()
    assert manifest["resolution"]["size"] == size
    assert all(p["passed"] for p in manifest["parity"])


@pytest.mark.parametrize("target", TARGETS)
def test_two_outputs_each_compared_and_top1_only_on_logits(target, exported):
    report = exported("two_heads", target).manifest.parity[0]
    logits, mask = report["outputs"]
    assert logits["shape"] == [2, 5] and logits["top1_agreement"] == 1.0
    assert mask["shape"] == [2, 3, 8, 12] and mask["top1_agreement"] is None
    assert "class logits" in report["top1_note"]


# What the default passes rewrite in tests/user_models/hybrid.py: its four einsums per block become
# permute -> matmul (8), which attention_to_bmm then reads as two Mobile->Former and two Mobile<-Former
# bridges; its BN chains and depthwise shortcut; its Dynamic ReLU with coefficients from a 1x1 conv and
# x.max(y) (4 sites); and the constants its learned tokens leave (5).
HYBRID_REWRITES = {"einsum_to_matmul": 8, "sdpa_to_matmul": 0, "fold_batchnorm": 7, "fuse_dwconv_ffn": 1, "split_depthwise_multiplier": 0,
                   "cancel_interleave_shuffle": 0, "fold_dynamic_relu": 4, "sink_channel_interleave": 0,
                   "attention_to_bmm": 4, "fold_constants": 5}

@pytest.mark.parametrize("target", TARGETS)
def test_hybrid_pass_counts(target, exported):
    artifact = exported("hybrid", target)
    counts = {p["id"]: p["rewrites"] for p in artifact.manifest.passes}
    slower = get_target(target).slower_passes  # left out of this target's default
    assert counts == {pass_id: n for pass_id, n in HYBRID_REWRITES.items() if pass_id not in slower}
    assert all(p["passed"] for p in artifact.manifest.parity)


@pytest.mark.parametrize("target", TARGETS)
def test_vit_sdpa_attention_is_rewritten(target, exported):
    """Its two F.scaled_dot_product_attention calls are spelled out, then made batched 3-D self-attention."""
    artifact = exported("vit_sdpa", target)
    counts = {p["id"]: p["rewrites"] for p in artifact.manifest.passes if p["rewrites"]}
    assert counts == {"sdpa_to_matmul": 2, "attention_to_bmm": 2}
    assert all(p["passed"] for p in artifact.manifest.parity)


def test_user_models_are_not_copied_from_the_zoo():
    """The user models import nothing of mobexport: they are what a user writes."""
    for path in USER_MODELS.glob("*.py"):
        assert "mobexport" not in path.read_text(), path
