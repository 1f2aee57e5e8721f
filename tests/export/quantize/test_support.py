"""The support table: every unsupported (target, mode) is refused in one line naming what is supported."""

from __future__ import annotations

import pytest

from mobexport.cli import main
from mobexport.errors import QuantizationError
from mobexport.export.quantize import support
from mobexport.export.targets import target_names

SMALL = "mobilenet_v3_small_100"


def one_line_error(capsys, *argv) -> str:
    status = main(list(argv))
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_every_shipped_target_has_a_row_and_only_known_modes():
    assert set(support.support_table()) == set(target_names())
    for modes in support.support_table().values():
        assert set(modes) <= set(support.MODES) - {"none"}


@pytest.mark.parametrize("target", sorted(support.support_table()))
def test_supported_modes_pass_and_others_name_the_supported_ones(target):
    for mode in support.supported_modes(target):
        support.check_supported(target, mode)
    for mode in set(support.MODES) - set(support.supported_modes(target)):
        with pytest.raises(QuantizationError) as info:
            support.check_supported(target, mode)
        text = info.value.one_line()
        assert f"--quantize {mode} is not supported for --target {target}" in text
        assert ", ".join(support.supported_modes(target)) in text


def test_unknown_mode_lists_all_modes():
    with pytest.raises(QuantizationError, match="unknown quantization 'int4'.*none \\| fp16 \\| int8 \\| int8-weights"):
        support.check_supported("onnx", "int4")


@pytest.mark.parametrize("target, mode", [("executorch", "fp16"), ("tensorrt", "int8-weights")])
def test_cli_refuses_unsupported_combination_before_any_work(capsys, out_dir, target, mode):
    line = one_line_error(capsys, "--model", SMALL, "--target", target, "--quantize", mode, "--out", str(out_dir),
                          "--build-engine", "no")
    assert f"--quantize {mode} is not supported for --target {target}" in line
    assert not out_dir.exists()


def test_cli_refuses_fp16_with_fp32_precision(capsys, out_dir):
    line = one_line_error(capsys, "--model", SMALL, "--target", "tensorrt", "--build-engine", "no",
                          "--quantize", "fp16", "--precision", "fp32", "--out", str(out_dir))
    assert "--quantize fp16 contradicts --precision fp32" in line


def test_quantized_modes_map_to_a_parity_tolerance():
    from mobexport.export.parity import TOLERANCES

    assert support.precision_of("none") is None
    for mode in ("fp16", "int8", "int8-weights"):
        assert support.precision_of(mode) in TOLERANCES


def test_core_ml_int8_says_what_the_code_does():
    """The manifest's ``how`` once claimed "PT2E with CoreMLQuantizer"; the code calibrates the saved package."""
    how = support.describe("coreml", "int8")
    assert "linear_quantize_activations" in how and "PT2E" not in how and "CoreMLQuantizer" not in how


def test_every_quantizer_declares_a_known_stage_and_a_run_where_it_rewrites():
    from mobexport.export.targets import quantizers_of
    from mobexport.export.targets.quantizers import ARTIFACT, OPTIONS, PROGRAM

    for target in target_names():
        for mode, quantizer in quantizers_of(target).items():
            assert quantizer.mode == mode and quantizer.stage in (PROGRAM, ARTIFACT, OPTIONS)
            assert (quantizer.run is None) == (quantizer.stage == OPTIONS), (target, mode)
            assert quantizer.how
