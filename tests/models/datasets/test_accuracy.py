"""Held-out top-1, top-1 agreement and logits SQNR of model callables."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mobexport.models.datasets import accuracy as acc
from mobexport.models.datasets.synthetic_shapes import NUM_CLASSES, generate
from mobexport.models import get_spec

MODEL = "mobilenet_v3_small_100"


def test_sqnr_of_a_known_noise_level():
    ref = np.full((4, 10), 10.0)
    assert acc.sqnr_db(ref, ref + 1.0) == pytest.approx(20.0)
    assert acc.sqnr_db(ref, ref + 0.1) == pytest.approx(40.0)
    assert acc.sqnr_db(ref, ref) == math.inf


def test_top1_and_agreement():
    a = np.eye(4, 10)                      # picks 0, 1, 2, 3
    b = np.eye(4, 10)[[0, 1, 3, 2]]        # picks 0, 1, 3, 2
    assert acc.top1(a, np.array([0, 1, 2, 9])) == pytest.approx(0.75)
    assert acc.top1_agreement(a, b) == pytest.approx(0.5)
    with pytest.raises(acc.AccuracyError):
        acc.top1_agreement(a, b[:3])


def test_heldout_inputs_use_the_models_normalisation():
    spec = get_spec(MODEL)
    inputs, labels = acc.heldout_inputs(MODEL, 32, samples=20, seed=1)
    data = generate(20, 32, seed=1, split="heldout")
    expected = (data.images.transpose(0, 3, 1, 2) / 255.0 - np.reshape(spec.mean, (1, 3, 1, 1))) / np.reshape(
        spec.std, (1, 3, 1, 1))
    assert inputs.dtype == np.float32 and inputs.shape == (20, 3, 32, 32)
    np.testing.assert_allclose(inputs, expected, atol=1e-5)
    assert labels.tolist() == data.labels.tolist()
    assert not inputs.flags.writeable  # shared cache: nobody may change it


def test_heldout_top1_of_an_oracle_and_of_a_constant():
    _, labels = acc.heldout_inputs(MODEL, 32, samples=40, seed=0)
    seen = []

    def oracle(x):  # answers in order, batch by batch
        start = sum(seen)
        seen.append(len(x))
        return np.eye(NUM_CLASSES, dtype=np.float32)[labels[start:start + len(x)]]

    assert acc.heldout_top1(oracle, MODEL, 32, samples=40, batch_size=16) == 1.0
    assert seen == [16, 16, 8]
    constant = lambda x: np.tile(np.eye(NUM_CLASSES)[3], (len(x), 1))  # noqa: E731
    assert acc.heldout_top1(constant, MODEL, 32, samples=40) == pytest.approx(0.1)  # balanced classes


def test_predict_accepts_conv_head_outputs_and_refuses_wrong_shapes():
    x = np.zeros((5, 3, 8, 8), np.float32)
    assert acc.predict(lambda b: np.zeros((len(b), 10, 1, 1)), x, batch_size=2).shape == (5, 10)
    with pytest.raises(acc.AccuracyError):
        acc.predict(lambda b: np.zeros((1, 10)), x, batch_size=2)
    with pytest.raises(acc.AccuracyError):
        acc.predict(lambda b: np.zeros((len(b), 10)), x, batch_size=0)


def test_compare_a_torch_model_with_itself_and_with_a_noisy_copy():
    from mobexport.models import create_model

    model = create_model(MODEL, num_classes=NUM_CLASSES)
    reference = acc.torch_logits(model)
    same = acc.compare_on_heldout(reference, reference, MODEL, 96, samples=20)
    assert same.top1_agreement == 1.0 and same.sqnr_db == math.inf
    assert same.reference_top1 == same.candidate_top1

    rng = np.random.default_rng(0)

    def noisy(x):
        y = reference(x)
        return y + rng.normal(0.0, 0.1, y.shape).astype(np.float32) * np.abs(y).mean()

    other = acc.compare_on_heldout(reference, noisy, MODEL, 96, samples=20)
    assert 10.0 < other.sqnr_db < 30.0
    assert 0.0 <= other.top1_agreement <= 1.0
    assert set(other.to_dict()) == {"samples", "reference_top1", "candidate_top1", "top1_agreement", "sqnr_db"}
