import numpy as np
import pytest

from mobexport.errors import ParityError
from mobexport.export import parity


def test_identical_outputs_pass():
    ref = np.random.default_rng(0).standard_normal((8, 10))
    report = parity.compare(ref, ref.copy(), 224, parity.FP32)
    assert report.passed and report.max_abs_error == 0 and report.top1_agreement == 1.0


def test_small_error_over_tolerance_fails():
    ref = np.random.default_rng(0).standard_normal((8, 10))  # max |logit| ~2.5: the bound is 2.5e-4
    got = ref + 4e-4
    report = parity.compare(ref, got, 224, parity.FP32)
    assert not report.passed
    assert report.max_abs_error == pytest.approx(4e-4, rel=1e-6)
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


def test_measure_uses_the_given_inputs_and_names_them():
    seen = []

    def reference(x):
        seen.append(x.copy())
        return x.reshape(1, -1)[:, :10]

    images = np.arange(2 * 3 * 8 * 8, dtype=np.float32).reshape(2, 3, 8, 8)
    report = parity.measure(reference, lambda x: x.reshape(1, -1)[:, :10] + 1e-6, 8, parity.FP32,
                            inputs=images, inputs_source="held-out images")
    assert report.passed and report.samples == 2 and report.inputs == "held-out images"
    assert "(held-out images)" in report.describe()
    np.testing.assert_array_equal(np.concatenate(seen), images)


def test_measure_defaults_to_noise_inputs():
    report = parity.measure(lambda x: x.reshape(1, -1)[:, :5], lambda x: x.reshape(1, -1)[:, :5], 16,
                            parity.FP32, samples=3)
    assert report.samples == 3 and report.inputs == parity.RANDOM_INPUTS and report.max_abs_error == 0


def test_max_abs_bound_scales_with_logits_above_one():
    ref = np.zeros((2, 4))
    ref[:, 0] = 20.0  # logits of scale 20: fp32 rounding of ~2e-4 is expected
    assert parity.compare(ref, ref + 1.5e-3, 224, parity.FP32).passed  # 1.5e-3 <= 1e-4 * 20 = 2e-3
    assert not parity.compare(ref, ref + 3e-3, 224, parity.FP32).passed
    small = ref / 40  # max |logit| 0.5: the bound stays absolute
    assert not parity.compare(small, small + 1.5e-4, 224, parity.FP32).passed


def test_vanishing_reference_outputs_name_the_weights_not_the_tolerance():
    # A random-init MobileNetV3-L gives logits of ~1e-9; an int8 artifact rounds them to 0.
    reference = np.random.default_rng(0).standard_normal((8, 1000)) * 1e-9
    report = parity.compare(reference, np.zeros_like(reference), 224, parity.INT8)
    assert not report.passed and report.cosine == 0.0
    assert parity.reference_scale(report) == pytest.approx(np.abs(reference).max())
    with pytest.raises(ParityError) as caught:
        parity.require([report], "artifact")
    assert "outputs are ~0" in str(caught.value) and "--checkpoint" in caught.value.hint


def test_an_ordinary_failure_still_points_at_the_tolerance():
    reference = np.random.default_rng(0).standard_normal((8, 1000))
    report = parity.compare(reference, reference + 1e-2, 224, parity.FP32)
    with pytest.raises(ParityError) as caught:
        parity.require([report], "artifact")
    assert "--tolerance" in caught.value.hint and "~0" not in str(caught.value)
