"""The sensitivity arithmetic and the float-fallback rule."""

from __future__ import annotations

import math

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


def test_own_sqnr_separates_added_noise_from_inherited_noise():
    # Input at 30 dB (noise 1e-3), output at 27 dB (noise ~2e-3): the layer added ~1e-3, i.e. ~30 dB.
    out = -10 * math.log10(2e-3)
    assert sens.own_sqnr_db(30.0, out) == pytest.approx(30.0, abs=1e-6)
    # No noise in: everything is the layer's own.
    assert sens.own_sqnr_db(sens.INFINITE_DB, 22.5) == 22.5
    # Output no noisier than input: the layer adds nothing measurable.
    assert sens.own_sqnr_db(30.0, 31.0) == sens.INFINITE_DB


def test_select_keeps_worst_layers_below_threshold_up_to_a_share():
    layers = [sens.layer(f"n{i}", "Conv", "", sens.INFINITE_DB, db) for i, db in enumerate([40, 12, 30, 18, 24, 35])]
    chosen = sens.select_float_layers(layers, threshold_db=25, max_fraction=1.0)
    assert [s.name for s in chosen] == ["n1", "n3", "n4"]
    assert [s.name for s in sens.select_float_layers(layers, threshold_db=25, max_fraction=0.34)] == ["n1", "n3"]
    assert sens.select_float_layers(layers, threshold_db=10) == []


def test_summary_lists_the_most_sensitive_first():
    layers = [sens.layer("a", "MatMul", "blk.attn", 40.0, 20.0), sens.layer("b", "Conv", "stem", 200.0, 45.0)]
    summary = sens.summary(layers, layers[:1], 25.0, 8)
    assert summary["layers_measured"] == 2 and summary["float_layers"] == 1 and summary["samples"] == 8
    assert [s["name"] for s in summary["most_sensitive"]] == ["a", "b"]
    assert summary["most_sensitive"][0]["scope"] == "blk.attn"
