"""PT2E + XNNPACK quantizer on a small CNN: static int8, dynamic int8 weights, the float fallback, lowering."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

pytest.importorskip("executorch", reason="the executorch extra is not installed")

from mobexport.export.quantize import sensitivity as sens  # noqa: E402
from mobexport.export.quantize.calibration import CalibrationSet  # noqa: E402
from mobexport.export.quantize.pt2e_xnnpack import quantize_program  # noqa: E402
from mobexport.export.quantize.sizes import program_weight_bytes  # noqa: E402
from mobexport.export.trace import TracedProgram  # noqa: E402

RES = 16


class TinyCNN(nn.Module):
    """Conv-ReLU-Conv-ReLU-pool-Linear, the same shape as the ONNX tests' model."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.head(x.mean(dim=(2, 3)))


def traced_of(module: nn.Module) -> TracedProgram:
    module = module.eval()
    program = torch.export.export(module, (torch.randn(1, 3, RES, RES),), strict=False)
    return TracedProgram(program, RES, False, RES, RES, RES)


def calibration(n: int, seed: int = 1) -> CalibrationSet:
    x = np.random.default_rng(seed).normal(0, 1, (n, 3, RES, RES)).astype(np.float32)
    return CalibrationSet(inputs=x, source="synthetic", resolution=RES)


def outputs(program, inputs) -> np.ndarray:
    module = program.module()
    with torch.no_grad():
        return np.concatenate([module(torch.from_numpy(x[None])).numpy() for x in inputs])


def op_names(program) -> set[str]:
    return {str(n.target) for n in program.graph.nodes if n.op == "call_function"}


def test_static_int8_quantizes_conv_and_linear_per_channel_and_stays_close():
    torch.manual_seed(0)
    traced = traced_of(TinyCNN())
    result = quantize_program(traced, "int8", calibration(16))
    ops = op_names(result.traced.program)
    assert "quantized_decomposed.dequantize_per_channel.default" in ops
    assert "quantized_decomposed.quantize_per_tensor.default" in ops
    assert not result.traced.dynamic and result.float_layers == []
    assert result.sensitivity["layers_measured"] >= 3
    held_out = calibration(8, seed=2).inputs
    assert sens.sqnr_db(outputs(traced.program, held_out), outputs(result.traced.program, held_out)) > 25
    assert program_weight_bytes(traced.program) / program_weight_bytes(result.traced.program) > 3.0


def test_dynamic_weights_mode_needs_no_calibration_and_is_close():
    torch.manual_seed(0)
    traced = traced_of(TinyCNN())
    result = quantize_program(traced, "int8-weights", calibration(1))
    ops = op_names(result.traced.program)
    assert any("choose_qparams" in op for op in ops)  # activations quantized per inference
    held_out = calibration(8, seed=2).inputs
    assert sens.sqnr_db(outputs(traced.program, held_out), outputs(result.traced.program, held_out)) > 25
    assert "sensitivity" not in result.scheme and result.sensitivity == {}


def test_a_tensor_int8_crushes_is_kept_float_and_that_helps():
    torch.manual_seed(0)
    traced = traced_of(TinyCNN())
    data, held_out = calibration(16), calibration(8, seed=2).inputs
    data.inputs[0] *= 40.0  # one rare input 40x larger: MinMax-like ranges crush every ordinary one
    plain = quantize_program(traced, "int8", data, mixed_precision=False)
    mixed = quantize_program(traced, "int8", data, max_float_fraction=1.0)
    assert mixed.float_layers and all(layer.cause == "output" for layer in mixed.float_layers), mixed.sensitivity
    assert set(mixed.float_island) >= {layer.name for layer in mixed.float_layers}
    reference = outputs(traced.program, held_out)
    plain_db = sens.sqnr_db(reference, outputs(plain.traced.program, held_out))
    mixed_db = sens.sqnr_db(reference, outputs(mixed.traced.program, held_out))
    assert mixed_db > plain_db + 6, (plain_db, mixed_db)
    assert mixed.sensitivity["output_sqnr_db"]["mixed"] > mixed.sensitivity["output_sqnr_db"]["all_int8"]


def test_quantized_program_lowers_to_xnnpack_and_runs():
    from executorch.runtime import Runtime

    from mobexport.export.targets.executorch.target import lower_program

    torch.manual_seed(0)
    traced = traced_of(TinyCNN())
    result = quantize_program(traced, "int8", calibration(8))
    manager, coverage, _ = lower_program(result.traced.program, "xnnpack")
    assert coverage.to_dict()["delegate_subgraphs"] >= 1
    method = Runtime.get().load_program(manager.buffer).load_method("forward")
    held_out = calibration(4, seed=2).inputs
    got = np.concatenate([method.execute([torch.from_numpy(x[None])])[0].numpy() for x in held_out])
    assert sens.sqnr_db(outputs(traced.program, held_out), got) > 25
