"""Checkpoints: NaN/Inf weights named at load (issue 24, 18); --trust-checkpoint advised only for a real pickle (19)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from mobexport.cli import main
from mobexport.errors import CheckpointError
from mobexport.models import create_model, load_checkpoint

MODEL = "mobilenet_v3_small_075"


class NotATensor:
    pass


def test_random_bytes_are_not_a_checkpoint_and_get_no_trust_advice(tmp_path):
    """Old code advised --trust-checkpoint, which would unpickle an untrusted file.

    Many random files, and one that starts with a pickle STOP byte (a complete,
    empty pickle stream to a naive check)."""
    rng = random.Random(19)
    path = tmp_path / "weights.pth"
    model = create_model(MODEL)
    for i in range(64):
        path.write_bytes(b"." + rng.randbytes(4095) if i == 0 else rng.randbytes(4096))
        with pytest.raises(CheckpointError) as refused:
            load_checkpoint(model, path, MODEL)
        line = refused.value.one_line()
        assert "--trust-checkpoint" not in line, (i, line)
        assert "not a PyTorch checkpoint" in line or "unreadable" in line, (i, line)


def test_a_pickle_of_other_objects_gets_the_trust_advice(tmp_path):
    path = tmp_path / "weights.pth"
    torch.save({"state_dict": create_model(MODEL).state_dict(), "extra": NotATensor()}, path)
    with pytest.raises(CheckpointError) as refused:
        load_checkpoint(create_model(MODEL), path, MODEL)
    assert "--trust-checkpoint" in refused.value.one_line()


def nan_checkpoint(tmp_path: Path) -> tuple[Path, str, str]:
    state = create_model(MODEL).state_dict()
    float_keys = [k for k, v in state.items() if v.is_floating_point() and v.numel() > 1]
    state[float_keys[0]][0] = float("nan")
    state[float_keys[-1]][..., 0] = float("inf")
    path = tmp_path / "nan.pth"
    torch.save(state, path)
    return path, float_keys[0], float_keys[-1]


def test_nan_and_inf_weights_are_named_at_load(tmp_path):
    """Old code loaded them and reported a parity failure after the whole export."""
    path, nan_key, inf_key = nan_checkpoint(tmp_path)
    with pytest.raises(CheckpointError) as refused:
        load_checkpoint(create_model(MODEL), path, MODEL)
    line = refused.value.one_line()
    assert nan_key in line and inf_key in line and "NaN or Inf" in line


def test_nan_weights_through_the_cli_are_one_line_before_any_export(tmp_path, capsys):
    path, nan_key, _ = nan_checkpoint(tmp_path)
    status = main(["--model", MODEL, "--target", "onnx", "--resolution", "96", "--static",
                   "--checkpoint", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1 and nan_key in lines[0], err
    assert not any((tmp_path / "out").rglob("*.onnx"))
