import numpy as np
import pytest

from mobexport.errors import ParityError
from mobexport.export import parity


def test_identical_outputs_pass():
    ref = np.random.default_rng(0).standard_normal((8, 10))
    report = parity.compare(ref, ref.copy(), 224, parity.FP32)
    assert report.passed and report.max_abs_error == 0 and report.top1_agreement == 1.0


def test_small_error_over_tolerance_fails():
    ref = np.random.default_rng(0).standard_normal((8, 10))
    got = ref + 2e-4
    report = parity.compare(ref, got, 224, parity.FP32)
    assert not report.passed
    assert report.max_abs_error == pytest.approx(2e-4, rel=1e-6)
    with pytest.raises(ParityError, match="@224"):
        parity.require([report], "test artifact")


def test_flipped_argmax_lowers_agreement():
    ref = np.eye(4) * 10
    got = ref.copy()
    got[0] = np.roll(got[0], 1)
    report = parity.compare(ref, got, 96, parity.FP16)
    assert report.top1_agreement == 0.75
    assert report.cosine < 0.5
    assert not report.passed


def test_nan_output_fails():
    ref = np.ones((2, 3))
    got = ref.copy()
    got[1, 1] = np.nan
    assert not parity.compare(ref, got, 96, parity.FP16).passed


def test_shape_mismatch_is_an_error():
    with pytest.raises(ParityError, match="shape"):
        parity.compare(np.ones((2, 3)), np.ones((2, 4)), 96, parity.FP32)
