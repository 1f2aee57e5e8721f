"""Synthetic Shapes: a procedurally generated 10-class image dataset.

Why it exists: no pretrained weights can be downloaded here, yet quantization
accuracy has to be measured on a model that has learned something. This
dataset is small enough to train ``mobile_former_26m`` or
``mobilenet_v3_small_100`` to >90% top-1 on two CPU cores in minutes, and hard
enough that a model must use spatial structure: colour, position, scale and
orientation are random and independent of the class, and every image carries
background clutter and noise.

Classes (one object per image): filled ``circle``, ``square``, ``triangle``,
``cross``, a ``ring``, horizontal and vertical stripes (``stripes_h``,
``stripes_v``), a ``checker`` patch, a grid of ``dots`` and a soft
``gradient_blob``. Geometry is drawn from signed distance functions in
normalised image coordinates, so one sample looks the same at any resolution
(only its pixel noise differs) and edges are anti-aliased.

Determinism: sample ``i`` of split ``s`` with seed ``k`` is a pure function of
``(k, s, i, resolution)``: its generator is seeded from exactly those numbers,
so the first ``n`` samples of a larger set equal a set of ``n`` and the same
seed gives byte-identical images (with the same numpy build). Labels are
balanced in every consecutive block of 10 samples. The splits (``train``,
``heldout``, ``calib``) use disjoint random streams.

Only numpy is needed to generate; Pillow writes and reads the PNG files.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mobexport.errors import MobexportError, OutputDirError

# Bump when rendering changes: cached fixtures are keyed by it.
DATASET_VERSION = 1

CLASS_NAMES = (
    "circle",
    "square",
    "triangle",
    "cross",
    "ring",
    "stripes_h",
    "stripes_v",
    "checker",
    "dots",
    "gradient_blob",
)
NUM_CLASSES = len(CLASS_NAMES)
SPLITS = {"train": 1, "heldout": 2, "calib": 3}
MIN_RESOLUTION = 16

_LABEL_STREAM = 0x1AB3


class DatasetError(MobexportError):
    """A Synthetic Shapes request is not valid (split, resolution, count)."""


@dataclass(frozen=True)
class Split:
    """Images as uint8 ``[N, H, W, 3]`` and integer labels ``[N]``."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


# ---------------------------------------------------------------- validation


def _check(split: str, resolution: int, n: int | None = None, start: int = 0, seed: int = 0) -> int:
    if split not in SPLITS:
        raise DatasetError(f"unknown split '{split}'", f"use one of {', '.join(SPLITS)}")
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or resolution < MIN_RESOLUTION:
        raise DatasetError(f"resolution {resolution!r} is too small or not an integer",
                           f"use an integer of at least {MIN_RESOLUTION}")
    if n is not None and n < 0:
        raise DatasetError(f"sample count {n} is negative", "ask for 0 or more samples")
    if start < 0:
        raise DatasetError(f"start index {start} is negative", "samples are numbered from 0")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DatasetError(f"seed {seed!r} is not a non-negative integer", "use e.g. --seed 0")
    return SPLITS[split]


# ----------------------------------------------------------------- labelling


def label_of(index: int, seed: int = 0, split: str = "train") -> int:
    """The class of sample ``index``: a seeded permutation of the 10 classes per block of 10."""
    split_id = _check(split, MIN_RESOLUTION, seed=seed)
    block, slot = divmod(int(index), NUM_CLASSES)
    order = np.random.default_rng([int(seed), split_id, _LABEL_STREAM, block]).permutation(NUM_CLASSES)
    return int(order[slot])


# ---------------------------------------------------------- distance fields
# All take local coordinates (u, v) in normalised image units; negative inside.


def _box(u, v, half_w, half_h):
    qx, qy = np.abs(u) - half_w, np.abs(v) - half_h
    outside = np.hypot(np.maximum(qx, 0.0), np.maximum(qy, 0.0))
    return outside + np.minimum(np.maximum(qx, qy), 0.0)


def _equilateral_triangle(u, v, half_side):
    """Equilateral triangle with its centroid on the origin (Inigo Quilez's exact field)."""
    k = np.sqrt(3.0)
    x = np.abs(u) - half_side
    y = v + half_side / k
    fold = x + k * y > 0.0
    x, y = np.where(fold, (x - k * y) / 2.0, x), np.where(fold, (-k * x - y) / 2.0, y)
    x = x - np.clip(x, -2.0 * half_side, 0.0)
    return -np.hypot(x, y) * np.sign(y)


def _periodic(t, period):
    """Signed offset from the nearest cell centre, in [-period/2, period/2)."""
    return (np.mod(t / period, 1.0) - 0.5) * period


def _shape_sdf(name: str, u, v, size: float, pixel: float, rng: np.random.Generator):
    """Distance field of class ``name`` at scale ``size`` (half-extent); ``pixel`` is one pixel's width."""
    if name == "circle":
        return np.hypot(u, v) - size
    if name == "square":
        return _box(u, v, size * 0.85, size * 0.85)
    if name == "triangle":
        return _equilateral_triangle(u, v, size * 0.95)
    if name == "cross":
        arm = size * rng.uniform(0.22, 0.32)
        return np.minimum(_box(u, v, size, arm), _box(u, v, arm, size))
    if name == "ring":
        width = size * rng.uniform(0.18, 0.3)
        return np.abs(np.hypot(u, v) - (size - width)) - width
    # Texture classes: a pattern clipped to a box (sides 1.6-2x size) that holds
    # >= 2.5 stripe periods, >= 3.5 checker cells or >= 2.5 dot spacings.
    half_w, half_h = size * rng.uniform(0.8, 1.0), size * rng.uniform(0.8, 1.0)
    box = _box(u, v, half_w, half_h)
    if name in ("stripes_h", "stripes_v"):
        period = max(size * rng.uniform(0.38, 0.6), 4.0 * pixel)
        pattern = np.abs(_periodic(v if name == "stripes_h" else u, period)) - period / 4.0
    elif name == "checker":
        period = 2.0 * max(size * rng.uniform(0.3, 0.42), 3.0 * pixel)  # two cells per period
        cu, cv = _periodic(u, period), _periodic(v, period)
        # Inside where the two half-period indices agree; distance to the nearest cell edge.
        same = np.sign(cu) * np.sign(cv) > 0.0
        edge = np.minimum(np.abs(cu), np.abs(cv))
        edge = np.minimum(edge, period / 2.0 - np.abs(cu))
        edge = np.minimum(edge, period / 2.0 - np.abs(cv))
        pattern = np.where(same, -edge, edge)
    elif name == "dots":
        spacing = max(size * rng.uniform(0.5, 0.7), 5.0 * pixel)
        radius = max(spacing * rng.uniform(0.2, 0.26), 1.5 * pixel)
        pattern = np.hypot(_periodic(u, spacing), _periodic(v, spacing)) - radius
    else:
        raise AssertionError(f"no distance field for {name}")
    return np.maximum(box, pattern)


# ----------------------------------------------------------------- rendering


def _coverage(sdf: np.ndarray, pixel: float) -> np.ndarray:
    """Anti-aliased fraction of each pixel inside the shape."""
    return np.clip(0.5 - sdf / pixel, 0.0, 1.0)


def _separable(rows: np.ndarray, cols: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """``sum_k rows[k, h] * cols[k, w] * colours[k, c]`` as an ``[H, W, 3]`` array."""
    k, h = rows.shape
    weighted = (rows[:, :, None] * colours[:, None, :]).reshape(k, -1)  # [k, H*3]
    return (weighted.T @ cols).reshape(h, 3, -1).transpose(0, 2, 1)


def _background(rng: np.random.Generator, x, y, pixel: float) -> np.ndarray:
    """Colour gradient + low-frequency waves + faint blobs and scratches.

    Waves and blobs are sums of separable (row x column) terms, built with one
    matrix product each: drawing them is then cheap next to training on them.
    """
    c = x[0]  # pixel centres along one axis (the image is square)
    c0, c1 = rng.uniform(0.05, 0.95, 3), rng.uniform(0.05, 0.95, 3)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    t = np.clip((np.cos(angle) * (x - 0.5) + np.sin(angle) * (y - 0.5)) * rng.uniform(0.3, 1.0) + 0.5, 0.0, 1.0)
    img = c0 + (c1 - c0) * t[..., None]

    # sin(a + b) = sin(a) cos(b) + cos(a) sin(b), with a along y and b along x.
    freq = rng.uniform(1.0, 4.0, (3, 2)) * rng.choice([-1.0, 1.0], (3, 2))
    phase = rng.uniform(0.0, 2.0 * np.pi, 3)
    amp = rng.uniform(-0.06, 0.06, (3, 3))
    a = 2.0 * np.pi * freq[:, 1:2] * c + phase[:, None]
    b = 2.0 * np.pi * freq[:, 0:1] * c
    img += _separable(np.sin(a), np.cos(b), amp)
    img += _separable(np.cos(a), np.sin(b), amp)

    k = int(rng.integers(3, 8))  # faint blobs: exp(-r^2) = exp(-dy^2) exp(-dx^2)
    centre, sigma = rng.uniform(0.0, 1.0, (k, 2)), rng.uniform(0.02, 0.07, (k, 1))
    gx = np.exp(-((c - centre[:, :1]) ** 2) / (2.0 * sigma**2))
    gy = np.exp(-((c - centre[:, 1:]) ** 2) / (2.0 * sigma**2))
    img += _separable(gy, gx, rng.uniform(-0.25, 0.25, (k, 3)))

    for _ in range(rng.integers(1, 4)):  # faint short scratches
        cx, cy = rng.uniform(0.0, 1.0, 2)
        a = rng.uniform(0.0, np.pi)
        u = np.cos(a) * (x - cx) + np.sin(a) * (y - cy)
        v = -np.sin(a) * (x - cx) + np.cos(a) * (y - cy)
        line = _coverage(_box(u, v, rng.uniform(0.04, 0.12), pixel * 0.6), pixel)
        colour = rng.uniform(0.0, 1.0, 3)
        alpha = rng.uniform(0.15, 0.35) * line[..., None]
        img = img * (1.0 - alpha) + colour * alpha
    return img


def _foreground_colour(rng: np.random.Generator, background_mean: np.ndarray) -> np.ndarray:
    """A random colour clearly distinct from the background's mean."""
    for _ in range(16):
        colour = rng.uniform(0.0, 1.0, 3)
        if np.linalg.norm(colour - background_mean) >= 0.45:
            return colour
    return np.where(background_mean > 0.5, 0.05, 0.95)


def render(index: int, resolution: int, seed: int = 0, split: str = "train") -> tuple[np.ndarray, int]:
    """Sample ``index`` of ``split``: a uint8 ``[H, W, 3]`` image and its label."""
    split_id = _check(split, resolution, start=index, seed=seed)
    label = label_of(index, seed, split)
    rng = np.random.default_rng([int(seed), split_id, int(index)])
    pixel = 1.0 / resolution
    centres = (np.arange(resolution) + 0.5) * pixel
    y, x = np.meshgrid(centres, centres, indexing="ij")

    img = _background(rng, x, y, pixel)
    colour = _foreground_colour(rng, img.mean(axis=(0, 1)))

    name = CLASS_NAMES[label]
    size = rng.uniform(0.16, 0.3)
    cx, cy = rng.uniform(size, 1.0 - size, 2)
    # Stripes keep their orientation class: tilt at most 15 degrees; others turn freely.
    angle = rng.uniform(-np.pi / 12, np.pi / 12) if name.startswith("stripes") else rng.uniform(0.0, 2.0 * np.pi)
    u = np.cos(angle) * (x - cx) + np.sin(angle) * (y - cy)
    v = -np.sin(angle) * (x - cx) + np.cos(angle) * (y - cy)
    if name == "gradient_blob":
        sigma_u, sigma_v = size * rng.uniform(0.55, 0.8), size * rng.uniform(0.55, 0.8)
        alpha = np.exp(-0.5 * ((u / sigma_u) ** 2 + (v / sigma_v) ** 2))
    else:
        alpha = _coverage(_shape_sdf(name, u, v, size, pixel, rng), pixel)
    alpha = alpha * rng.uniform(0.85, 1.0)
    img = img * (1.0 - alpha[..., None]) + colour * alpha[..., None]

    img += rng.normal(0.0, rng.uniform(0.01, 0.05), img.shape)
    return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8), label


def generate(n: int, resolution: int, seed: int = 0, split: str = "train", start: int = 0) -> Split:
    """Samples ``start .. start + n - 1`` of ``split`` as a :class:`Split`."""
    _check(split, resolution, n, start, seed)
    images = np.empty((n, resolution, resolution, 3), dtype=np.uint8)
    labels = np.empty(n, dtype=np.int64)
    for i in range(n):
        images[i], labels[i] = render(start + i, resolution, seed, split)
    return Split(images, labels)


# -------------------------------------------------------------- as tensors


def to_tensor(images: np.ndarray):
    """uint8 ``[N, H, W, 3]`` -> float32 torch tensor ``[N, 3, H, W]`` in [0, 1]."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).float().div_(255.0)


def load_split(split: str, n: int, resolution: int, seed: int = 0, start: int = 0):
    """``(images, labels)`` as torch tensors: float ``[N, 3, H, W]`` in [0, 1] and int64 ``[N]``."""
    import torch

    data = generate(n, resolution, seed, split, start)
    return to_tensor(data.images), torch.from_numpy(data.labels)


# -------------------------------------------------------------- PNG files


def write_png_tree(directory: str | Path, n: int, resolution: int, seed: int = 0, split: str = "calib") -> list[Path]:
    """Write ``n`` samples as ``directory/<class_name>/<index:05d>.png``.

    This is the layout ``--calib DIR`` reads. The tree is assembled in a hidden
    staging directory beside ``directory`` and renamed into place, so an
    interrupted run leaves nothing that looks complete. An existing
    ``directory`` is refused rather than mixed with.
    """
    from PIL import Image

    _check(split, resolution, n, seed=seed)
    directory = Path(directory)
    if directory.exists():
        raise OutputDirError(f"'{directory}' already exists", "choose a new directory or remove it first")
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.", suffix=".partial"))
    except OSError as exc:
        raise OutputDirError(f"cannot create '{directory}': {exc.strerror}",
                             "check the path and its permissions") from exc
    relative = []
    try:
        for name in CLASS_NAMES:
            (staging / name).mkdir()
        for i in range(n):
            image, label = render(i, resolution, seed, split)
            rel = Path(CLASS_NAMES[label]) / f"{i + 1:05d}.png"
            Image.fromarray(image, mode="RGB").save(staging / rel, format="PNG")
            relative.append(rel)
        os.chmod(staging, 0o755)  # mkdtemp makes it private; calibration images are not secret
        os.replace(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [directory / rel for rel in relative]


def read_png_tree(directory: str | Path) -> Split:
    """Read a tree written by :func:`write_png_tree` back (labels from folder names)."""
    from PIL import Image

    directory = Path(directory)
    files = sorted(p for p in directory.glob("*/*.png") if p.parent.name in CLASS_NAMES)
    if not files:
        raise DatasetError(f"no Synthetic Shapes PNGs under '{directory}'", "expected <class_name>/<index>.png")
    images = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in files])
    labels = np.array([CLASS_NAMES.index(p.parent.name) for p in files], dtype=np.int64)
    return Split(images, labels)
