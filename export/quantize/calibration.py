"""Calibration inputs: images from ``--calib DIR`` preprocessed as the model expects.

Static int8 quantization picks each activation's range from what the model
sees on representative inputs, so the inputs must go through the model's own
evaluation preprocessing (``mobexport.models.get_spec``). That is timm's
evaluation transform (``transforms_imagenet_eval`` with the default centre
crop), reproduced exactly:

- the shorter side becomes ``floor(resolution / crop_pct)`` and the longer
  side ``int(new_short * long / short)`` (torchvision's ``Resize(int)``:
  truncated, not rounded), with the spec's interpolation;
- centre crop to ``resolution``, offsets ``int(round((size - resolution) / 2))``
  (torchvision's ``CenterCrop``);
- scale to [0, 1], normalise with the spec's mean/std.

Files are found recursively and every format PIL reads is accepted (jpg, png,
webp, bmp, tiff, gif...): a file whose extension PIL knows is an image, any
other file is tried by content and, if PIL does not recognise it, skipped and
counted as "not an image" (one debug log line each). An image file that does not
decode is skipped and counted too. Only when nothing usable remains is it an
error: a calibration directory with a stray README or one broken file should
not stop an export, but one with no images must. The file order is shuffled
with a fixed seed before ``samples`` are taken, so class-sorted folders
(``cat/``, ``dog/``...) still give a mixed calibration set, reproducibly.

Images beyond ``samples`` (up to ``heldback``) are kept apart as
"calibration-like" inputs for the accuracy report, so agreement is not
measured on the very images the ranges were fitted to.

Without ``--calib``, inputs are synthetic: standard-normal noise in the
normalised space, clipped to what a real pixel can give. Ranges fitted to noise
can be far off a real image's, so this is warned about and recorded.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mobexport.errors import QuantizationError
from mobexport.models.spec import ModelSpec

SHUFFLE_SEED = 0
DEFAULT_HELDBACK = 64
log = logging.getLogger(__name__)


@dataclass
class CalibrationSet:
    """Preprocessed float32 ``[N, 3, R, R]`` inputs and where they came from."""

    inputs: np.ndarray
    source: str  # "images" or "synthetic"
    resolution: int
    heldback: np.ndarray | None = None
    directory: str | None = None
    files_found: int = 0
    skipped_not_image: int = 0
    skipped_unreadable: list[str] = field(default_factory=list)
    preprocessing: dict = field(default_factory=dict)

    @property
    def synthetic(self) -> bool:
        return self.source == "synthetic"

    def batches(self, limit: int | None = None):
        """Inputs one at a time as ``[1, 3, R, R]`` (exported programs take batch 1)."""
        for x in self.inputs[:limit]:
            yield x[None]

    def to_dict(self) -> dict:
        facts = {
            "source": self.source,
            "samples": int(len(self.inputs)),
            "resolution": self.resolution,
            "preprocessing": self.preprocessing,
        }
        if self.synthetic:
            facts["warning"] = ("no --calib images: activation ranges were fitted to random noise and may not "
                                "suit real images")
        else:
            facts.update({
                "directory": self.directory,
                "files_found": self.files_found,
                "skipped_not_image": self.skipped_not_image,
                "skipped_unreadable": len(self.skipped_unreadable),
                "heldback_samples": 0 if self.heldback is None else int(len(self.heldback)),
            })
            if self.skipped_unreadable:
                facts["unreadable_examples"] = self.skipped_unreadable[:5]
        return facts


def resized_size(width: int, height: int, shorter_side: int) -> tuple[int, int]:
    """``(width, height)`` after torchvision's ``Resize(shorter_side)``, as timm's eval transform uses it.

    The shorter side becomes ``shorter_side``; the longer one
    ``int(shorter_side * long / short)``, truncated as torchvision does.
    """
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(shorter_side * long / short)
    return (shorter_side, new_long) if width <= height else (new_long, shorter_side)


def shorter_side_for(spec: ModelSpec, resolution: int) -> int:
    """timm's ``scale_size``: ``floor(resolution / crop_pct)``."""
    return math.floor(resolution / spec.crop_pct)


def preprocessing_of(spec: ModelSpec, resolution: int) -> dict:
    return {
        "transform": "timm transforms_imagenet_eval (centre crop)",
        "resize_shorter_side": shorter_side_for(spec, resolution),
        "resize_longer_side": "int(shorter * long / short)",
        "interpolation": spec.interpolation,
        "center_crop": resolution,
        "mean": list(spec.mean),
        "std": list(spec.std),
    }


def preprocess(image, spec: ModelSpec, resolution: int) -> np.ndarray:
    """A PIL image -> float32 ``[3, R, R]``: resize shorter side, centre crop, normalise."""
    from PIL import Image

    filters = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
               "nearest": Image.Resampling.NEAREST, "lanczos": Image.Resampling.LANCZOS}
    image = image.convert("RGB")
    size = resized_size(*image.size, shorter_side_for(spec, resolution))
    if size != image.size:  # torchvision returns the image unchanged when no resize is needed
        image = image.resize(size, filters.get(spec.interpolation, Image.Resampling.BILINEAR))
    left = int(round((size[0] - resolution) / 2.0))
    top = int(round((size[1] - resolution) / 2.0))
    image = image.crop((left, top, left + resolution, top + resolution))
    x = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / np.float32(255.0)
    mean = np.asarray(spec.mean, dtype=np.float32).reshape(3, 1, 1)
    std = np.asarray(spec.std, dtype=np.float32).reshape(3, 1, 1)
    return (x - mean) / std


def image_extensions() -> frozenset[str]:
    """Every file extension PIL has a decoder for (``.jpg``, ``.png``, ``.webp``, ``.bmp``, ``.tif``...)."""
    from PIL import Image

    from PIL import ImageFile

    Image.init()  # registers every plugin, not only the five preloaded ones

    def decodes(fmt: str) -> bool:  # stub formats (HDF5, GRIB, WMF...) need an external handler
        factory = Image.OPEN.get(fmt, (None,))[0]
        return factory is not None and not (isinstance(factory, type)
                                            and issubclass(factory, ImageFile.StubImageFile))

    return frozenset(ext for ext, fmt in Image.registered_extensions().items() if decodes(fmt))


def _is_image(path: Path) -> bool:
    """Whether PIL recognises ``path``'s content as an image (reads only the header)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path):
            return True
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return False


def find_images(directory: Path) -> tuple[list[Path], int]:
    """(image files sorted by path, count of other files) under ``directory``, recursively.

    A file is an image when its extension is one PIL reads, or, whatever its
    extension, when PIL recognises its content; hidden files are ignored.
    """
    directory = Path(directory)
    hint = "pass --calib DIR with images PIL can read (jpg, png, webp, bmp, tiff...)"
    if not directory.exists():
        raise QuantizationError(f"calibration directory '{directory}' does not exist", hint)
    if not directory.is_dir():
        raise QuantizationError(f"--calib '{directory}' is not a directory", hint)
    if not os.access(directory, os.R_OK | os.X_OK):
        raise QuantizationError(f"calibration directory '{directory}' is not readable",
                                "check its permissions")
    extensions = image_extensions()
    images, others = [], 0
    errors: list[OSError] = []
    for root, dirs, files in os.walk(directory, onerror=errors.append):
        dirs.sort()
        for name in files:
            path = Path(root) / name
            if name.startswith("."):
                continue
            if not path.is_file():  # a FIFO or device would block a read; a dangling link has nothing
                log.debug("calibration: skipping %s: not a regular file", path)
                others += 1
            elif path.suffix.lower() in extensions or _is_image(path):
                images.append(path)
            else:
                log.debug("calibration: skipping %s: not an image PIL can read", path)
                others += 1
    if errors and not images:
        raise QuantizationError(f"cannot read calibration directory '{directory}' ({errors[0].strerror})",
                                "check its permissions")
    return sorted(images), others


def load_calibration(directory: Path, spec: ModelSpec, resolution: int, samples: int,
                     heldback: int = DEFAULT_HELDBACK) -> CalibrationSet:
    """``samples`` preprocessed images from ``directory`` (plus up to ``heldback`` more, kept apart)."""
    from PIL import Image, UnidentifiedImageError

    if samples < 1:
        raise QuantizationError(f"--calib-samples must be at least 1, not {samples}", "e.g. --calib-samples 128")
    files, others = find_images(directory)
    order = np.random.default_rng(SHUFFLE_SEED).permutation(len(files))
    wanted = samples + max(0, heldback)
    arrays: list[np.ndarray] = []
    unreadable: list[str] = []
    for index in order:
        if len(arrays) == wanted:
            break
        path = files[index]
        try:
            with Image.open(path) as image:
                arrays.append(preprocess(image, spec, resolution))
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            unreadable.append(f"{path.name}: {type(exc).__name__}")
    if not arrays:
        what = f"{len(files)} image file(s) unreadable" if files else "no image files"
        raise QuantizationError(
            f"no usable calibration images in '{directory}' ({what}, {others} other file(s) skipped)",
            "put images PIL can read (jpg, png, webp, bmp, tiff...; any folder depth) in the --calib directory")
    if unreadable:
        log.warning("calibration: skipped %d unreadable image file(s) in %s (e.g. %s)",
                    len(unreadable), directory, unreadable[0])
    if others:
        log.info("calibration: skipped %d non-image file(s) in %s", others, directory)
    stacked = np.stack(arrays).astype(np.float32)
    calib, rest = stacked[:samples], stacked[samples:]
    if len(calib) < samples:
        log.warning("calibration: %s has %d usable image(s), fewer than --calib-samples %d; using them all",
                    directory, len(calib), samples)
    return CalibrationSet(
        inputs=calib, source="images", resolution=resolution, heldback=rest if len(rest) else None,
        directory=str(directory), files_found=len(files), skipped_not_image=others,
        skipped_unreadable=unreadable, preprocessing=preprocessing_of(spec, resolution),
    )


def synthetic_calibration(spec: ModelSpec, resolution: int, samples: int, seed: int = 0) -> CalibrationSet:
    """Normal noise in the normalised space, clipped to the range a real pixel maps to."""
    if samples < 1:
        raise QuantizationError(f"--calib-samples must be at least 1, not {samples}", "e.g. --calib-samples 128")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((samples, 3, resolution, resolution)).astype(np.float32)
    mean = np.asarray(spec.mean, dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(spec.std, dtype=np.float32).reshape(1, 3, 1, 1)
    x = np.clip(x, (0.0 - mean) / std, (1.0 - mean) / std).astype(np.float32)
    return CalibrationSet(inputs=x, source="synthetic", resolution=resolution,
                          preprocessing={"kind": "standard normal in normalised space, clipped to the pixel range",
                                         "seed": seed})


@functools.lru_cache(maxsize=1)
def calibration_for(calib_dir: Path | None, spec: ModelSpec, resolution: int, samples: int) -> CalibrationSet:
    """The calibration set an export uses: ``--calib`` images, else synthetic with a warning.

    Cached (one entry) so that a target quantizing inside ``lower`` and the
    pipeline's accuracy report share one load. Treat the arrays as read-only.
    """
    if calib_dir is not None:
        return load_calibration(Path(calib_dir), spec, resolution, samples)
    log.warning("no --calib DIR given: calibrating %s on %d synthetic noise inputs; int8 accuracy on real images "
                "may suffer (pass --calib with a few hundred representative images)", spec.name, samples)
    return synthetic_calibration(spec, resolution, samples)
