"""Fixture training: it learns, it caches by key, it writes loadable checkpoints, it refuses bad input."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from mobexport import cli
from mobexport.benchmarks import fixture_cli
from mobexport.benchmarks import fixture_training as ft
from mobexport.benchmarks.accuracy import heldout_top1, torch_logits
from mobexport.benchmarks.synthetic_shapes import DATASET_VERSION
from mobexport.errors import ResolutionError, UnknownModelError
from mobexport.models import create_model

MODEL = "mobilenet_v3_small_100"
# A dozen steps on one batch of 32 images: enough to fit that batch (the loss must
# fall), cheap enough for the default suite (~10 CPU seconds).
TINY = ft.TrainRecipe(epochs=12, train_samples=32, heldout_samples=20, batch_size=32, batches_per_epoch=1,
                      lr=4e-3, warmup_fraction=0.25)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One real tiny training run, shared by the tests that inspect its result."""
    out = tmp_path_factory.mktemp("fixtures")
    return ft.obtain_fixture(MODEL, 96, seed=0, recipe=TINY, out_dir=out, threads=1)


def test_a_short_run_really_lowers_the_loss(tiny_run):
    """Twelve steps fit the one training batch: its loss falls well below the first step's
    (about 2.3 -> 1.8 here). Held-out accuracy cannot move from 32 images; the full
    recipe's is checked by the slow test below."""
    history = tiny_run.meta["history"]
    assert [row["epoch"] for row in history] == list(range(TINY.epochs + 1))
    assert history[-1]["train_loss"] < history[1]["train_loss"] - 0.3


def test_checkpoint_is_plain_and_loads_into_the_zoo_model(tiny_run):
    payload = torch.load(tiny_run.path, map_location="cpu", weights_only=True)
    assert set(payload) == {"state_dict", "meta"}
    json.dumps(payload["meta"])  # plain types only
    meta = payload["meta"]
    assert meta["model"] == MODEL and meta["resolution"] == 96 and meta["seed"] == 0
    assert meta["dataset"]["version"] == DATASET_VERSION and meta["recipe"] == TINY.to_dict()
    assert meta["key"] == tiny_run.path.stem

    model = create_model(MODEL, checkpoint=tiny_run.path, num_classes=10)
    # The accuracy recorded at the end of training is what the loaded model scores.
    top1 = heldout_top1(torch_logits(model), MODEL, 96, samples=TINY.heldout_samples, seed=0)
    assert top1 == pytest.approx(meta["heldout_top1"])
    assert not list(tiny_run.path.parent.glob(".*.tmp"))


def test_cache_hit_does_not_retrain_and_force_does(tiny_run, monkeypatch):
    calls = []
    real_train = ft.train

    def counting_train(*args, **kwargs):
        calls.append(args)
        return real_train(*args, **kwargs)

    monkeypatch.setattr(ft, "train", counting_train)
    out = tiny_run.path.parent
    again = ft.obtain_fixture(MODEL, 96, seed=0, recipe=TINY, out_dir=out, threads=1)
    assert not again.trained and again.path == tiny_run.path and calls == []
    assert again.meta["created"] == tiny_run.meta["created"]

    # --force retrains; stub the training itself to keep this fast.
    def fake_train(model_name, resolution, seed, recipe, reporter=None, threads=None):
        calls.append(model_name)
        state = create_model(model_name, num_classes=10).state_dict()
        return ft.TrainingResult(state, [{"epoch": 1, "train_loss": 1.0, "heldout_top1": 0.5, "heldout_loss": 1.0,
                                          "seconds": 1.0}], 1.0, 1.0)

    monkeypatch.setattr(ft, "train", fake_train)
    forced = ft.obtain_fixture(MODEL, 96, seed=0, recipe=TINY, out_dir=out, force=True, threads=1)
    assert forced.trained and calls == [MODEL] and ft.read_fixture_meta(forced.path)["heldout_top1"] == 0.5


def test_the_key_changes_with_everything_that_changes_the_weights():
    base = ft.fixture_key(MODEL, 96, 0, TINY)
    assert base.startswith(f"{MODEL}-r96-s0-d{DATASET_VERSION}-")
    others = {
        ft.fixture_key("mobile_former_26m", 96, 0, TINY),
        ft.fixture_key(MODEL, 128, 0, TINY),
        ft.fixture_key(MODEL, 96, 1, TINY),
        ft.fixture_key(MODEL, 96, 0, replace(TINY, epochs=4)),
        ft.fixture_key(MODEL, 96, 0, replace(TINY, lr=1e-3)),
        ft.fixture_key(MODEL, 96, 0, replace(TINY, label_smoothing=0.0)),
    }
    assert base not in others and len(others) == 6
    assert ft.fixture_key(MODEL, 96, 0, replace(TINY)) == base


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(ft.CACHE_ENV, str(tmp_path))
    assert ft.cache_dir() == tmp_path / "fixtures"
    assert ft.fixture_path(MODEL, recipe=TINY).parent == tmp_path / "fixtures"
    monkeypatch.delenv(ft.CACHE_ENV)
    assert ft.cache_dir().parts[-3:] == (".cache", "mobexport", "fixtures")


def test_save_is_atomic(tmp_path, monkeypatch):
    def broken_save(obj, f):
        f.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(ft.torch, "save", broken_save)
    with pytest.raises(OSError):
        ft.save_fixture(tmp_path / "x.pt", {"w": torch.zeros(1)}, {"kind": "test"})
    assert list(tmp_path.iterdir()) == []


def test_augment_keeps_shape_and_is_seeded():
    x = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).reshape(2, 3, 16, 16)
    a = ft.augment(x, TINY, torch.Generator().manual_seed(1))
    b = ft.augment(x, TINY, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b)
    identity = replace(TINY, flips=False, max_shift=0.0)
    assert torch.equal(ft.augment(x, identity, torch.Generator()), x)
    # A pure shift moves content without inventing values.
    shifted = ft.augment(x, replace(TINY, flips=False), torch.Generator().manual_seed(3))
    assert set(shifted.unique().tolist()) <= set(x.unique().tolist())


def test_recipe_validation():
    with pytest.raises(ft.FixtureError):
        replace(TINY, epochs=0).validate()
    with pytest.raises(ft.FixtureError):
        replace(TINY, optimizer="lamb").validate()
    assert TINY.steps_per_epoch() == 1
    assert replace(TINY, train_samples=100, batches_per_epoch=None).steps_per_epoch() == 4
    assert replace(TINY, train_samples=100, batches_per_epoch=2).steps_per_epoch() == 2


def test_request_checks():
    with pytest.raises(UnknownModelError):
        ft.check_request("mobile_former_27m", 96)
    with pytest.raises(ResolutionError):
        ft.check_request(MODEL, 100)


# ------------------------------------------------------------------- the CLI


@pytest.mark.parametrize("argv", [
    ["--model", "no_such_model"],
    ["--model", f"{MODEL},no_such_model"],
    ["--resolution", "100"],
    ["--resolution", "32"],
    ["--epochs", "0"],
    ["--threads", "0"],
    ["--seed", "-1"],
])
def test_cli_bad_input_exits_2_without_training(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ft, "train", lambda *a, **k: pytest.fail("must not train"))
    assert cli.main(["train-fixture", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_cli_model_list_parsing():
    assert fixture_cli._model_names(None) == list(ft.FIXTURE_MODELS)
    assert fixture_cli._model_names([f"{MODEL}, mobile_former_26m", MODEL]) == [MODEL, "mobile_former_26m"]


def test_cli_trains_once_then_reports_cached(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(fixture_cli, "default_recipe", lambda name, epochs=None: replace(TINY, epochs=epochs or 1))
    calls = []
    real_train = ft.train
    monkeypatch.setattr(ft, "train", lambda *a, **k: calls.append(a[0]) or real_train(*a, **k))
    argv = ["train-fixture", "--model", MODEL, "--out", str(tmp_path), "--epochs", "1", "--threads", "1"]
    assert cli.main(argv) == 0
    assert calls == [MODEL] and len(list(tmp_path.glob("*.pt"))) == 1
    first = capsys.readouterr().out
    assert MODEL in first and "trained" in first

    assert cli.main(argv) == 0
    assert calls == [MODEL]  # cached: no second training
    assert "cached" in capsys.readouterr().out

    monkeypatch.setattr(ft, "train", lambda *a, **k: calls.append(a[0]) or tiny_result())
    assert cli.main([*argv, "--force"]) == 0
    assert calls == [MODEL, MODEL]


def tiny_result() -> ft.TrainingResult:
    state = create_model(MODEL, num_classes=10).state_dict()
    return ft.TrainingResult(state, [{"epoch": 1, "train_loss": 2.0, "heldout_top1": 0.1, "heldout_loss": 2.3,
                                      "seconds": 0.5}], 0.5, 0.5)


# ------------------------------------------------------------ full training


@pytest.mark.slow
@pytest.mark.parametrize("model_name", ft.FIXTURE_MODELS)
def test_full_fixture_reaches_90_percent(model_name):
    """The real recipe (minutes per model on 2 cores; cached under $MOBEXPORT_CACHE afterwards)."""
    path = ft.ensure_fixture(model_name, ft.DEFAULT_RESOLUTION, seed=0)
    meta = ft.read_fixture_meta(path)
    model = create_model(model_name, checkpoint=path, num_classes=10)
    top1 = heldout_top1(torch_logits(model), model_name, ft.DEFAULT_RESOLUTION,
                        samples=meta["dataset"]["heldout_samples"], seed=0)
    assert top1 >= 0.90
    assert top1 == pytest.approx(meta["heldout_top1"])
    assert np.isfinite(meta["train_seconds"])
