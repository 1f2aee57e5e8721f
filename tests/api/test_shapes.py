"""Size spellings, the runner's HxW check and parity over several outputs: no export needed."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mobexport.devices.input_shapes import AcceptedInputs
from mobexport.errors import InvalidOptionError, ParityError, ResolutionError
from mobexport.export import parity
from mobexport.shapes import Resolution, SizeRange, parse_channel_triple, parse_input_shape, side


@given(st.integers(1, 4096), st.integers(1, 4096))
def test_resolution_round_trips_through_its_json_form(h, w):
    size = Resolution(h, w)
    assert Resolution.of(size.to_json()) == size
    assert Resolution.of(str(size)) == size
    assert side(size) == pytest.approx((h * w) ** 0.5)


@pytest.mark.parametrize("bad", ["0", "0x5", "12x", "x12", "12x12x3", "-3", "abc", "", True, 2.5])
def test_bad_sizes_are_refused(bad):
    with pytest.raises(InvalidOptionError, match="positive integer"):
        Resolution.of(bad)


def test_input_shapes_ranges_and_channel_triples():
    assert parse_input_shape("1x3x256x320") == (1, 3, 256, 320)
    with pytest.raises(InvalidOptionError):
        parse_input_shape("1x3x256")
    assert SizeRange.parse("128..512/32") == SizeRange(128, 512, 32) and 160 in SizeRange(128, 512, 32)
    for bad in ("512..128/32", "128..500/32", "128-512"):
        with pytest.raises(InvalidOptionError):
            SizeRange.parse(bad)
    assert parse_channel_triple("0.5, 0.5,0.5", "--mean") == (0.5, 0.5, 0.5)
    with pytest.raises(InvalidOptionError):
        parse_channel_triple("1,0,1", "--std")


def test_a_static_rectangular_artifact_accepts_only_its_size():
    accepted = AcceptedInputs.from_manifest({"resolution": {"export": 96, "height": 96, "width": 128,
                                                            "dynamic": False}})
    accepted.check((1, 3, 96, 128))
    with pytest.raises(ResolutionError, match="96x128 only.*--resolution 128x96"):
        accepted.check((1, 3, 128, 96))


def test_parity_compares_every_output_and_top1_only_on_logits():
    rng = np.random.default_rng(0)
    logits, fmap = rng.standard_normal((4, 10)), rng.standard_normal((4, 3, 5, 5))
    report = parity.compare([logits, fmap], [logits, fmap], 96, parity.FP32)
    assert report.passed and [o.top1_agreement for o in report.outputs] == [1.0, None]
    broken = fmap.copy()
    broken[0, 0, 0, 0] += 1.0
    report = parity.compare([logits, fmap], [logits, broken], Resolution(96, 128), parity.FP32)
    assert not report.passed and report.outputs[0].passed and not report.outputs[1].passed
    assert report.size == "96x128" and "output 1" in report.describe()
    only_maps = parity.compare([fmap], [fmap], 96, parity.FP32)
    assert only_maps.top1_agreement is None and "class logits" in only_maps.to_dict()["top1_note"]
    with pytest.raises(ParityError, match="2 output"):
        parity.compare([logits], [logits, fmap], 96, parity.FP32)
