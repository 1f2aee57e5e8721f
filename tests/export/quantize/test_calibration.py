"""Calibration images: the model's own preprocessing, recursive discovery, and every bad directory."""

from __future__ import annotations

import dataclasses
import logging
import math
import os

import numpy as np
import pytest
from PIL import Image

from mobexport.cli import main
from mobexport.errors import QuantizationError
from mobexport.export.quantize.calibration import (
    calibration_for,
    find_images,
    load_calibration,
    preprocess,
    preprocessing_of,
    resized_size,
    synthetic_calibration,
)
from mobexport.models import get_spec

SMALL = "mobilenet_v3_small_100"  # bicubic, crop_pct 0.875
SPEC = get_spec(SMALL)


def save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8), mode="RGB").save(path)
    return path


def solid(h, w, rgb):
    return np.broadcast_to(np.asarray(rgb, dtype=np.uint8), (h, w, 3)).copy()


def test_constant_image_normalises_with_the_spec_mean_and_std():
    x = preprocess(Image.fromarray(solid(50, 80, (51, 102, 204))), SPEC, 32)
    assert x.shape == (3, 32, 32) and x.dtype == np.float32
    expected = (np.array([51, 102, 204]) / 255.0 - np.array(SPEC.mean)) / np.array(SPEC.std)
    np.testing.assert_allclose(x.mean(axis=(1, 2)), expected, atol=1e-4)
    np.testing.assert_allclose(x.std(axis=(1, 2)), 0, atol=1e-4)


def test_shorter_side_is_resized_to_res_over_crop_pct_then_centre_cropped():
    # A white square of side 2*s centred in a black 400x200 image: after resizing the
    # shorter side (200) to floor(64/0.875) = 73 and cropping 64, the square spans
    # 2*s*73/200 pixels, centred.
    image = solid(200, 400, (0, 0, 0))
    s = 50
    image[100 - s:100 + s, 200 - s:200 + s] = 255
    x = preprocess(Image.fromarray(image), SPEC, 64)
    white = x[0] > 0.5 * ((1 - SPEC.mean[0]) / SPEC.std[0])
    rows, cols = np.nonzero(white)
    span = 2 * s * math.floor(64 / SPEC.crop_pct) / 200
    assert rows.max() - rows.min() + 1 == pytest.approx(span, abs=2)
    assert cols.max() - cols.min() + 1 == pytest.approx(span, abs=2)
    assert (rows.min() + rows.max()) / 2 == pytest.approx(31.5, abs=1)
    assert (cols.min() + cols.max()) / 2 == pytest.approx(31.5, abs=1)


def timm_eval_reference(image, spec, resolution):
    """timm's eval transform written out from its definition (transforms_imagenet_eval, centre crop):
    torchvision Resize(floor(res / crop_pct)) keeps the aspect ratio with the long side
    truncated by int(), then CenterCrop offsets int(round((size - res) / 2))."""
    width, height = image.size
    short_target = math.floor(resolution / spec.crop_pct)
    if width <= height:
        size = (short_target, int(short_target * height / width))
    else:
        size = (int(short_target * width / height), short_target)
    resized = image.convert("RGB").resize(size, Image.Resampling.BICUBIC)
    left = int(round((size[0] - resolution) / 2.0))
    top = int(round((size[1] - resolution) / 2.0))
    x = np.asarray(resized.crop((left, top, left + resolution, top + resolution)), np.float32)
    x = x.transpose(2, 0, 1) / np.float32(255.0)
    return (x - np.reshape(spec.mean, (3, 1, 1)).astype(np.float32)) / np.reshape(spec.std, (3, 1, 1)).astype(np.float32)


@pytest.mark.parametrize("width, height, resolution", [(640, 427, 224), (427, 640, 224), (500, 333, 96),
                                                       (333, 500, 128), (300, 300, 64)])
def test_preprocessing_is_timms_eval_transform_exactly(width, height, resolution):
    # 640x427 at 224: the shorter side becomes floor(224 / 0.875) = 256 and the longer
    # int(256 * 640 / 427) = 383 (round() gave 384, off by one pixel column everywhere).
    rng = np.random.default_rng(width + height)
    image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    x = preprocess(image, SPEC, resolution)
    np.testing.assert_allclose(x, timm_eval_reference(image, SPEC, resolution), atol=1e-5)


def test_resized_size_truncates_the_longer_side_like_torchvision():
    assert resized_size(640, 427, 256) == (383, 256)
    assert resized_size(427, 640, 256) == (256, 383)
    assert resized_size(300, 300, 73) == (73, 73)
    assert preprocessing_of(SPEC, 224)["resize_shorter_side"] == 256


def test_every_format_pil_reads_is_a_calibration_image(tmp_path, caplog):
    pixels = solid(40, 60, (200, 100, 50))
    for name, fmt in [("a.webp", "WEBP"), ("b.bmp", "BMP"), ("c.tiff", "TIFF"), ("d.gif", "GIF"),
                      ("e.JPG", "JPEG"), ("f.ppm", "PPM")]:
        Image.fromarray(pixels).save(tmp_path / name, format=fmt)
    Image.fromarray(pixels).save(tmp_path / "no_extension", format="PNG")  # recognised by content
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "weights.bin").write_bytes(bytes(range(256)))
    caplog.set_level(logging.DEBUG, logger="mobexport.export.quantize.calibration")
    images, others = find_images(tmp_path)
    assert [p.name for p in images] == ["a.webp", "b.bmp", "c.tiff", "d.gif", "e.JPG", "f.ppm", "no_extension"]
    assert others == 2
    assert "notes.txt: not an image" in caplog.text and "weights.bin: not an image" in caplog.text
    calib = load_calibration(tmp_path, SPEC, 16, samples=7, heldback=0)
    assert calib.inputs.shape == (7, 3, 16, 16) and not calib.skipped_unreadable


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_in_the_directory_is_skipped_not_read(tmp_path):
    save(tmp_path / "a.png", solid(8, 8, (0, 0, 0)))
    os.mkfifo(tmp_path / "pipe.jpg")   # opening it to read would block forever
    os.mkfifo(tmp_path / "pipe")
    images, others = find_images(tmp_path)
    assert [p.name for p in images] == ["a.png"] and others == 2


def test_interpolation_follows_the_spec():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (90, 90, 3), dtype=np.uint8))
    bicubic = preprocess(image, SPEC, 32)  # the spec says bicubic
    bilinear_spec = dataclasses.replace(SPEC, interpolation="bilinear")
    bilinear = preprocess(image, bilinear_spec, 32)
    reference = np.asarray(image.resize((36, 36), Image.Resampling.BICUBIC).crop((2, 2, 34, 34)), np.float32)
    reference = (reference.transpose(2, 0, 1) / 255 - np.reshape(SPEC.mean, (3, 1, 1))) / np.reshape(SPEC.std, (3, 1, 1))
    np.testing.assert_allclose(bicubic, reference, atol=1e-5)
    assert np.abs(bicubic - bilinear).max() > 0.05


def test_images_are_found_recursively_and_other_files_counted(tmp_path):
    save(tmp_path / "a" / "b" / "deep.PNG", solid(8, 8, (1, 2, 3)))
    save(tmp_path / "top.jpg", solid(8, 8, (1, 2, 3)))
    Image.fromarray(solid(8, 8, (9, 9, 9))).save(tmp_path / "a" / "x.jpeg", format="JPEG")
    (tmp_path / "README.txt").write_text("not an image")
    (tmp_path / "a" / "labels.csv").write_text("1,2")
    images, others = find_images(tmp_path)
    assert [p.name for p in images] == ["deep.PNG", "x.jpeg", "top.jpg"]
    assert others == 2


def test_bad_files_are_skipped_and_counted_when_some_images_are_usable(tmp_path):
    for i in range(6):
        save(tmp_path / f"ok{i}.png", solid(40, 40, (10 * i, 0, 0)))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "notes.md").write_text("hello")
    calib = load_calibration(tmp_path, SPEC, 32, samples=4, heldback=10)
    assert calib.inputs.shape == (4, 3, 32, 32) and calib.heldback.shape == (2, 3, 32, 32)
    facts = calib.to_dict()
    assert facts["source"] == "images" and facts["files_found"] == 7
    assert facts["skipped_not_image"] == 1 and facts["skipped_unreadable"] == 1
    assert facts["unreadable_examples"][0].startswith("broken.png")


def test_class_sorted_folders_give_a_mixed_reproducible_sample(tmp_path):
    for c in range(5):
        for i in range(10):
            save(tmp_path / f"class{c}" / f"{i:02d}.png", solid(16, 16, (40 * c, 0, 0)))
    first = load_calibration(tmp_path, SPEC, 16, samples=10, heldback=0)
    again = load_calibration(tmp_path, SPEC, 16, samples=10, heldback=0)
    np.testing.assert_array_equal(first.inputs, again.inputs)
    classes = {round(float(x[0].mean()), 3) for x in first.inputs}
    assert len(classes) >= 3  # not just the first folder


@pytest.mark.parametrize("make, message", [
    (lambda d: d, "no usable calibration images .*no image files"),
    (lambda d: (d / "readme.txt").write_text("x") and d, "no image files, 1 other file"),
    (lambda d: (d / "bad.jpg").write_bytes(b"garbage") and d, "1 image file\\(s\\) unreadable"),
    (lambda d: d / "missing", "does not exist"),
    (lambda d: (d / "file.png").write_bytes(b"x") and d / "file.png", "is not a directory"),
])
def test_unusable_directories_raise_quantization_error(tmp_path, make, message):
    directory = make(tmp_path)
    with pytest.raises(QuantizationError, match=message):
        load_calibration(directory, SPEC, 32, samples=8)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any directory")
def test_unreadable_directory_raises(tmp_path):
    locked = tmp_path / "locked"
    save(locked / "a.png", solid(8, 8, (0, 0, 0)))
    locked.chmod(0)
    try:
        with pytest.raises(QuantizationError, match="not readable"):
            load_calibration(locked, SPEC, 32, samples=8)
    finally:
        locked.chmod(0o755)


def test_zero_samples_is_refused(tmp_path):
    save(tmp_path / "a.png", solid(8, 8, (0, 0, 0)))
    with pytest.raises(QuantizationError, match="--calib-samples must be at least 1"):
        load_calibration(tmp_path, SPEC, 32, samples=0)


def test_synthetic_calibration_stays_in_the_pixel_range_and_warns(caplog):
    calibration_for.cache_clear()
    calib = calibration_for(None, SPEC, 32, 4)
    assert calib.synthetic and calib.inputs.shape == (4, 3, 32, 32)
    low = (0 - np.reshape(SPEC.mean, (1, 3, 1, 1))) / np.reshape(SPEC.std, (1, 3, 1, 1))
    high = (1 - np.reshape(SPEC.mean, (1, 3, 1, 1))) / np.reshape(SPEC.std, (1, 3, 1, 1))
    assert (calib.inputs >= low - 1e-6).all() and (calib.inputs <= high + 1e-6).all()
    assert "no --calib DIR given" in caplog.text
    assert "random noise" in calib.to_dict()["warning"]
    np.testing.assert_array_equal(synthetic_calibration(SPEC, 32, 4).inputs, calib.inputs)


@pytest.mark.parametrize("setup, fragment", [
    (lambda d: d, "no usable calibration images"),
    (lambda d: (d / "only.txt").write_text("x") and d, "no image files, 1 other file(s) skipped"),
])
def test_cli_bad_calibration_dir_is_one_line_before_tracing(capsys, tmp_path, setup, fragment):
    calib = tmp_path / "calib"
    calib.mkdir()
    calib = setup(calib)
    out = tmp_path / "out"
    status = main(["--model", SMALL, "--target", "onnx", "--quantize", "int8", "--calib", str(calib),
                   "--out", str(out)])
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.strip() and "WARNING" not in line]
    assert status == 2 and len(lines) == 1 and fragment in lines[0], err
    assert not out.exists()
