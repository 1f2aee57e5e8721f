"""The sensitivity arithmetic and the float-fallback rule."""

from __future__ import annotations

import numpy as np
import pytest

from mobexport.export.quantize import sensitivity as sens


def test_sqnr_of_known_noise():
    rng = np.random.default_rng(0)
    signal = rng.normal(0, 1, 100_000)
    noisy = signal + rng.normal(0, 0.1, signal.shape)  # noise power 1/100 of the signal: 20 dB
    assert sens.sqnr_db(signal, noisy) == pytest.approx(20, abs=0.2)
    assert sens.sqnr_db(signal, signal) == sens.INFINITE_DB
    assert sens.sqnr_db(np.zeros(4), np.ones(4)) == -sens.INFINITE_DB


def test_fake_quantize_rounds_to_the_int8_grid_and_clips():
    x = np.array([-3.0, -0.26, 0.0, 0.24, 0.26, 2.0, 100.0])
    got = sens.fake_quantize(x, 0.5, 0, -128, 127)
    np.testing.assert_allclose(got, [-3.0, -0.5, 0.0, 0.0, 0.5, 2.0, 63.5])
    per_channel = sens.fake_quantize(np.array([[1.0, 2.0], [1.0, 2.0]]), [1.0, 0.5], [0, 0], -127, 127, axis=0)
    np.testing.assert_allclose(per_channel, [[1.0, 2.0], [1.0, 2.0]])
    # A uniform signal over the full int8 range rounds at ~6.02 dB per bit: ~48 dB.
    uniform = np.random.default_rng(0).uniform(-128, 127, 100_000)
    assert sens.sqnr_db(uniform, sens.fake_quantize(uniform, 1.0, 0, -128, 127)) == pytest.approx(48.2, abs=0.5)


def test_rare_large_inputs_show_in_the_median_not_in_the_power_sum():
    rng = np.random.default_rng(0)
    ordinary = [rng.normal(0, 1, 1000) for _ in range(15)]
    rare = rng.normal(0, 40, 1000)
    scale = max(np.abs(np.concatenate(ordinary + [rare]))) / 127  # MinMax over all inputs
    per_input = [sens.sqnr_db(v, sens.fake_quantize(v, scale, 0, -128, 127)) for v in ordinary + [rare]]
    pooled = np.concatenate(ordinary + [rare])
    assert sens.sqnr_db(pooled, sens.fake_quantize(pooled, scale, 0, -128, 127)) > 28  # looks fine
    assert sens.median_db(per_input) < 15  # but every ordinary input is crushed


def test_layer_sensitivity_is_the_worse_of_output_and_weights():
    layer = sens.LayerSensitivity("n", "Conv", "blk", sqnr_out_db=31.0, sqnr_weight_db=22.0)
    assert layer.sqnr_db == 22.0 and layer.cause == "weights"
    assert sens.LayerSensitivity("m", "Mul", "", 12.0, sens.INFINITE_DB).cause == "output"
    assert layer.to_dict()["sqnr_db"] == 22.0


def test_select_keeps_worst_layers_below_threshold_up_to_a_share():
    layers = [sens.LayerSensitivity(f"n{i}", "Conv", "", db, sens.INFINITE_DB)
              for i, db in enumerate([40, 12, 30, 18, 24, 35])]
    chosen = sens.select_float_layers(layers, threshold_db=25, max_fraction=1.0)
    assert [s.name for s in chosen] == ["n1", "n3", "n4"]
    assert [s.name for s in sens.select_float_layers(layers, threshold_db=25, max_fraction=0.34)] == ["n1", "n3"]
    assert sens.select_float_layers(layers, threshold_db=10) == []


def test_summary_lists_the_most_sensitive_first():
    layers = [sens.LayerSensitivity("a", "MatMul", "blk.attn", 20.0, 60.0),
              sens.LayerSensitivity("b", "Conv", "stem", 45.0, 50.0)]
    summary = sens.summary(layers, layers[:1], 25.0, 8)
    assert summary["layers_measured"] == 2 and summary["float_layers"] == 1 and summary["samples"] == 8
    assert [s["name"] for s in summary["most_sensitive"]] == ["a", "b"]
    assert summary["most_sensitive"][0]["scope"] == "blk.attn"
