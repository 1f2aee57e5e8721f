"""The export table: one row per export, from the manifest, printed and written."""

from __future__ import annotations

import json

import pytest

from mobexport.benchmarks.studies import export_table

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")


def test_rows_come_from_real_exports_and_failures_are_listed(tmp_path, capsys):
    status = export_table.main(["--models", "mobilenet_v3_small_075", "--targets", "onnx,nonexistent",
                                "--resolution", "96", "--parity-samples", "2", "--out", str(tmp_path)])
    assert status == 1  # the unknown target failed, the ONNX export did not
    data = json.loads((tmp_path / "export_table.json").read_text())
    (row,) = data["rows"]
    assert row["model"] == "mobilenet_v3_small_075" and row["target"] == "onnx" and row["quantize"] == "none"
    assert row["parity_resolutions"] == [96, 160] and row["max_abs_error"] < 1e-4 and row["cosine"] > 0.99999
    assert row["params"] == pytest.approx(row["reference_params"], rel=0.01)
    assert row["size_bytes"] == (tmp_path / "none" / "mobilenet_v3_small_075" / "onnx" / "model.onnx").stat().st_size
    assert len(data["failures"]) == 1 and "unknown target 'nonexistent'" in data["failures"][0]
    markdown = (tmp_path / "export_table.md").read_text().splitlines()
    assert len(markdown) == 3 and markdown[2].startswith("| mobilenet_v3_small_075 | onnx | none | 96 dyn |")
    assert "failed" in capsys.readouterr().out
