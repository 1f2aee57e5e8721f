"""Checkpoint reading and loading, on a tiny module so every case is cheap."""

from __future__ import annotations

import argparse

import pytest
import torch
import torch.nn as nn
from safetensors.torch import save_file

from mobexport.errors import CheckpointError
from mobexport.models.checkpoint import load_checkpoint, read_state_dict


class Tiny(nn.Module):
    classifier_prefix = "head"

    def __init__(self, num_classes=10):
        super().__init__()
        self.body = nn.Linear(4, 6)
        self.head = nn.Linear(6, num_classes)

    def forward(self, x):
        return self.head(self.body(x).relu())


def trained(num_classes=10):
    torch.manual_seed(123)
    return Tiny(num_classes)


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"state_dict": sd, "epoch": 3},
        lambda sd: {"model": sd},
        lambda sd: {"state_dict_ema": sd},
        lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
        lambda sd: {f"_orig_mod.module.{k}": v for k, v in sd.items()},
    ],
    ids=["plain", "state_dict", "model", "ema", "ddp-prefix", "compile+ddp"],
)
def test_nested_and_prefixed_checkpoints_load_identically(tmp_path, wrap):
    source = trained()
    path = tmp_path / "ckpt.pth"
    torch.save(wrap(source.state_dict()), path)
    target = Tiny()
    report = load_checkpoint(target, path)
    x = torch.randn(3, 4)
    assert torch.equal(source(x), target(x))
    assert len(report.sha256) == 64


def test_safetensors(tmp_path):
    source = trained()
    path = tmp_path / "ckpt.safetensors"
    save_file(source.state_dict(), str(path))
    target = Tiny()
    load_checkpoint(target, path)
    x = torch.randn(2, 4)
    assert torch.equal(source(x), target(x))


def test_other_class_count_leaves_head_fresh_and_says_so(tmp_path):
    source = trained(num_classes=1000)
    path = tmp_path / "ckpt.pth"
    torch.save(source.state_dict(), path)
    target = Tiny(num_classes=10)
    fresh_head = target.head.weight.clone()
    report = load_checkpoint(target, path)
    assert torch.equal(target.body.weight, source.body.weight)
    assert torch.equal(target.head.weight, fresh_head)
    assert report.fresh_keys == ["head.weight", "head.bias"]
    assert "num_classes=10" in report.notes[0]


def test_mismatched_checkpoint_lists_first_keys(tmp_path):
    state = trained().state_dict()
    state["extra.weight"] = torch.zeros(1)
    state["body.weight"] = torch.zeros(7, 4)
    del state["body.bias"]
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(Tiny(), path, "tiny")
    message = info.value.one_line()
    assert "1 missing (e.g. body.bias)" in message
    assert "1 unexpected (e.g. extra.weight)" in message
    assert "body.weight (7, 4) vs (6, 4)" in message


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        read_state_dict(tmp_path / "nope.pth")


def test_corrupt_file(tmp_path):
    path = tmp_path / "corrupt.pth"
    torch.save(trained().state_dict(), path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="unreadable"):
        read_state_dict(path)


def test_pickled_objects_need_trust(tmp_path):
    path = tmp_path / "with_args.pth"
    torch.save({"state_dict": trained().state_dict(), "args": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(CheckpointError, match="--trust-checkpoint"):
        read_state_dict(path)
    assert set(read_state_dict(path, trust=True)) == {"body.weight", "body.bias", "head.weight", "head.bias"}


def test_no_tensors(tmp_path):
    path = tmp_path / "empty.pth"
    torch.save({"epoch": 1}, path)
    with pytest.raises(CheckpointError, match="no state dict"):
        read_state_dict(path)
