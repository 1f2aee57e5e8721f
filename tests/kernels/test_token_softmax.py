"""mobexport::token_softmax: reference, fake shapes, and every target's lowering against the reference."""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pytest
import torch
from torch.export import Dim

from mobexport.kernels import decomposition_table, onnx_translation_table, token_softmax
from mobexport.kernels.lowering import decompose, fused_ops_in

OP = token_softmax.OP


class Scores(torch.nn.Module):
    """conv -> [N, T, P] scores -> token_softmax -> conv, so lowerings see a realistic neighbourhood."""

    def __init__(self, tokens: int = 6):
        super().__init__()
        self.tokens = tokens
        self.conv = torch.nn.Conv2d(3, 2 * tokens, 1)

    def forward(self, x):
        s = self.conv(x).flatten(2).unflatten(1, (2, self.tokens)).flatten(0, 1)  # [2B, T, P]
        return OP(s * 4.0)  # large scores: the max subtraction must hold


def _program(dynamic: bool = False):
    x = torch.randn(1, 3, 8, 12)
    shapes = {"x": {2: 4 * Dim("h", min=1, max=8), 3: 4 * Dim("w", min=1, max=8)}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.export.export(Scores().eval(), (x,), dynamic_shapes=shapes, strict=False)


def test_reference_is_softmax_over_tokens():
    s = torch.randn(4, 6, 50) * 30
    out = OP(s)
    assert torch.allclose(out, torch.softmax(s, 1))
    assert torch.allclose(out.sum(1), torch.ones(4, 50))


def test_reference_refuses_other_ranks():
    with pytest.raises(ValueError, match=r"\[N, T, P\]"):
        OP(torch.randn(2, 6))


def test_fake_shape_matches_reference_and_exports_dynamic():
    program = _program(dynamic=True)
    node = next(n for n in program.graph.nodes if n.target is OP)
    fake = node.meta["val"]
    assert fake.dim() == 3 and fake.shape[1] == 6
    x = torch.randn(1, 3, 16, 20)
    assert program.module()(x).shape == (2, 6, 16 * 20)


@pytest.mark.parametrize("name", ["xnnpack", "portable", "plain"])
def test_aten_decompositions_equal_reference(name):
    s = torch.randn(3, 5, 40) * 20
    table = decomposition_table(name)
    assert torch.allclose(table[OP](s), torch.softmax(s, 1), atol=1e-6)


def test_decompose_removes_the_op_and_keeps_numerics():
    program = _program()
    assert fused_ops_in(program) == {OP}
    lowered = decompose(program, decomposition_table("xnnpack"))
    assert fused_ops_in(lowered) == set()
    softmaxes = [n for n in lowered.graph.nodes if "softmax" in str(n.target)]
    assert softmaxes and all(n.args[1] in (-1, 2) for n in softmaxes)  # last axis only: XNNPACK takes it
    x = torch.randn(1, 3, 8, 12)
    with torch.no_grad():
        assert torch.allclose(lowered.module()(x), program.module()(x), atol=1e-6)


def test_onnx_lowering_runs_in_onnxruntime():
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    import onnxruntime as ort

    program = _program(dynamic=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onnx_program = torch.onnx.export(program, f=None, dynamo=True, opset_version=18,
                                         custom_translation_table=onnx_translation_table(), verbose=False)
    model = onnx_program.model_proto
    ops = {n.op_type for n in model.graph.node}
    assert {"ReduceMax", "ReduceSum", "Exp"} <= ops and "Softmax" not in ops
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for h, w in ((8, 12), (16, 4)):
        x = torch.randn(1, 3, h, w)
        with torch.no_grad():
            expected = program.module()(x).numpy()
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        assert np.abs(got - expected).max() < 1e-6


def test_executorch_xnnpack_lowering_is_delegated_and_equal():
    pytest.importorskip("executorch", reason="the executorch extra is not installed")
    from executorch.runtime import Runtime

    from mobexport.export.targets.executorch.target import lower_program

    program = decompose(_program(), decomposition_table("xnnpack"))
    manager, coverage, _ = lower_program(program, "xnnpack")
    assert coverage.delegate_subgraphs == 1 and not coverage.portable_ops_on_activations
    method = Runtime.get().load_program(manager.buffer).load_method("forward")
    x = torch.randn(1, 3, 8, 12)
    got = method.execute([x])[0]
    with torch.no_grad():
        assert torch.abs(got - program.module()(x)).max() < 1e-6


def test_coreml_lowering_converts():
    if importlib.util.find_spec("coremltools") is None:
        pytest.skip("the coreml extra is not installed")
    import coremltools as ct

    program = decompose(_program(), decomposition_table("plain"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlmodel = ct.convert(program, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
                             skip_model_load=True)
    ops = [op.op_type for f in mlmodel._mil_program.functions.values() for op in f.operations]
    assert "softmax" in ops
    # Prediction needs macOS; the lowering's numerics are the decomposition's, checked above.
