"""Synthetic Shapes: determinism, balance, splits, rendering and the PNG tree."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mobexport.models.datasets import synthetic_shapes as ss
from mobexport.errors import MobexportError, OutputDirError


def test_same_seed_gives_identical_bytes():
    a = ss.generate(20, 48, seed=3)
    b = ss.generate(20, 48, seed=3)
    assert a.images.tobytes() == b.images.tobytes()
    assert a.labels.tolist() == b.labels.tolist()


def test_different_seed_gives_different_images():
    a = ss.generate(20, 48, seed=3)
    b = ss.generate(20, 48, seed=4)
    differing = [i for i in range(20) if not np.array_equal(a.images[i], b.images[i])]
    assert len(differing) == 20


def test_a_sample_does_not_depend_on_the_batch_it_is_drawn_in():
    whole = ss.generate(30, 32, seed=1)
    tail = ss.generate(10, 32, seed=1, start=20)
    assert tail.images.tobytes() == whole.images[20:].tobytes()
    assert tail.labels.tolist() == whole.labels[20:].tolist()


def test_splits_are_different_streams():
    train = ss.generate(10, 32, seed=0, split="train")
    heldout = ss.generate(10, 32, seed=0, split="heldout")
    assert not any(np.array_equal(train.images[i], heldout.images[i]) for i in range(10))


def test_classes_are_balanced_in_every_block_of_ten():
    labels = np.array([ss.label_of(i, seed=7) for i in range(200)])
    for block in labels.reshape(-1, ss.NUM_CLASSES):
        assert sorted(block.tolist()) == list(range(ss.NUM_CLASSES))
    # The order within blocks is shuffled, not the same cycle every time.
    assert len({tuple(b) for b in labels.reshape(-1, ss.NUM_CLASSES).tolist()}) > 10


def test_generate_shapes_dtypes_and_range():
    data = ss.generate(12, 40, seed=0)
    assert data.images.shape == (12, 40, 40, 3) and data.images.dtype == np.uint8
    assert data.labels.shape == (12,) and data.labels.dtype == np.int64
    assert data.images.std() > 10  # not blank


@pytest.mark.parametrize("resolution", [32, 96, 131])
def test_any_resolution_draws_the_same_scene(resolution):
    """Geometry is resolution-free: downsampled renders agree up to pixel noise and edges."""
    image, label = ss.render(5, resolution, seed=2)
    big, big_label = ss.render(5, 256, seed=2)
    assert image.shape == (resolution, resolution, 3) and label == big_label
    small = torch.nn.functional.interpolate(torch.from_numpy(big).permute(2, 0, 1)[None].float(),
                                            size=(resolution, resolution), mode="area")[0].permute(1, 2, 0).numpy()
    assert np.abs(small - image.astype(np.float32)).mean() < 16  # a wrong scene differs by ~60


def test_the_object_is_visible():
    """Every class leaves a clear mark: the image differs from the same scene's background."""
    for index in range(ss.NUM_CLASSES):
        image, label = ss.render(index, 64, seed=0)
        # The foreground colour is kept >= 0.45 (RGB distance) from the background mean,
        # so some pixels must lie far from the background's typical colour.
        deviation = np.linalg.norm(image.astype(float) - np.median(image.reshape(-1, 3), axis=0), axis=2)
        assert (deviation > 60).mean() > 0.01, ss.CLASS_NAMES[label]


def test_load_split_returns_tensors():
    x, y = ss.load_split("heldout", 10, 32, seed=0)
    assert x.shape == (10, 3, 32, 32) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert y.dtype == torch.int64 and y.tolist() == ss.generate(10, 32, split="heldout").labels.tolist()


def test_png_tree_round_trips(tmp_path):
    pytest.importorskip("PIL")
    out = tmp_path / "calib"
    paths = ss.write_png_tree(out, 23, 40, seed=5)
    assert len(paths) == 23 and all(p.is_file() for p in paths)
    assert {p.parent.name for p in paths} <= set(ss.CLASS_NAMES)
    assert sorted(p.name for p in paths)[:2] == ["00001.png", "00002.png"]
    back = ss.read_png_tree(out)
    direct = ss.generate(23, 40, seed=5, split="calib")
    # read_png_tree sorts by class folder then file name; compare as a set of (label, bytes).
    pairs = lambda d: sorted((int(l), im.tobytes()) for l, im in zip(d.labels, d.images))  # noqa: E731
    assert pairs(back) == pairs(direct)
    assert not list(tmp_path.glob(".calib*"))  # no staging directory left


def test_png_tree_refuses_an_existing_directory(tmp_path):
    (tmp_path / "calib").mkdir()
    with pytest.raises(OutputDirError):
        ss.write_png_tree(tmp_path / "calib", 3, 32)


def test_png_tree_interrupted_leaves_nothing(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = ss.render

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(ss, "render", failing)
    with pytest.raises(KeyboardInterrupt):
        ss.write_png_tree(tmp_path / "calib", 10, 32)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs", [
    {"split": "validation"},
    {"resolution": 8},
    {"resolution": 32.5},
    {"n": -1},
    {"seed": -3},
])
def test_bad_requests_raise_one_line_errors(kwargs):
    args = {"n": 2, "resolution": 32, "split": "train", "seed": 0} | kwargs
    with pytest.raises(MobexportError):
        ss.generate(args["n"], args["resolution"], seed=args["seed"], split=args["split"])
