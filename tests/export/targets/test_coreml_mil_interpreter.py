"""The MIL reference interpreter on real saved packages: loading, fp16 emulation, layer-wise blame, coverage gaps."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch

pytest.importorskip("coremltools", reason="the coreml extra is not installed")

from mobexport.errors import ParityError  # noqa: E402
from mobexport.export import parity  # noqa: E402
from mobexport.devices.runtimes.coreml_mil import MILInterpreter, UnsupportedProgramError, load_program  # noqa: E402
from mobexport.devices.runtimes.coreml_mil import ops as mil_ops  # noqa: E402
from mobexport.export.targets.coreml.layerwise import first_departure  # noqa: E402


class Block(torch.nn.Module):
    """conv (stride 2, 'same'-like) -> tokens -> layer norm -> square linear -> attention-style matmul -> head."""

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.norm = torch.nn.LayerNorm(16)
        self.proj = torch.nn.Linear(16, 16)
        self.head = torch.nn.Linear(16, 10)
        with torch.no_grad():
            self.proj.weight.mul_(scale)

    def forward(self, x):
        t = self.conv(x).flatten(2).transpose(1, 2)            # [1, 64, 16]
        t = self.proj(self.norm(t))
        attn = torch.softmax(t @ t.transpose(1, 2) / 4.0, dim=-1)
        t = torch.nn.functional.layer_norm(attn @ t, (16,))
        return self.head(t.mean(dim=1))


def convert(module: torch.nn.Module, out, precision: str):
    import coremltools as ct

    program = torch.export.export(module.eval(), (torch.randn(1, 3, 16, 16),))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlmodel = ct.convert(program.run_decompositions({}), inputs=[ct.TensorType(name="input", shape=(1, 3, 16, 16))],
                             outputs=[ct.TensorType(name="logits", dtype=np.float32)], convert_to="mlprogram",
                             compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
                             minimum_deployment_target=ct.target.iOS16, skip_model_load=True)
    path = out / f"{precision}.mlpackage"
    mlmodel.save(str(path))
    return path, program


@pytest.fixture(scope="module")
def block():
    torch.manual_seed(0)
    return Block()


@pytest.fixture(scope="module")
def packages(block, tmp_path_factory):
    out = tmp_path_factory.mktemp("mil")
    return {precision: convert(block, out, precision) for precision in ("fp32", "fp16")}


X = np.random.default_rng(1).standard_normal((1, 3, 16, 16)).astype(np.float32)


@pytest.mark.parametrize("precision, bound", [("fp32", 1e-5), ("fp16", 2e-2)])
def test_saved_package_runs_and_matches_pytorch(block, packages, precision, bound):
    path, program = packages[precision]
    assert (path / "Data" / "com.apple.CoreML" / "weights" / "weight.bin").exists()
    interpreter = MILInterpreter(load_program(path))
    assert interpreter.unsupported == [] and interpreter.fp16 == (precision == "fp16")
    assert {"conv", "layer_norm", "linear", "matmul", "softmax"} <= set(interpreter.op_types)
    outputs, kept = interpreter.run({"input": X})
    assert kept == {}
    with torch.no_grad():
        want = block(torch.from_numpy(X)).numpy()
    got = outputs["logits"]
    assert got.shape == want.shape and np.abs(got - want).max() < bound * max(1.0, np.abs(want).max())
    assert first_departure(interpreter, program, X, precision=precision) is None


def test_fp16_program_values_are_fp16_representable(packages):
    interpreter = MILInterpreter(load_program(packages["fp16"][0]))
    _, kept = interpreter.run({"input": X}, keep=True)
    fp16_outputs = [var.name for op in interpreter.operations for var in op.outputs
                    if op.op_type not in ("const",) and "fp16" in var.name]
    assert fp16_outputs
    for name in fp16_outputs:
        value = kept[name]
        np.testing.assert_array_equal(value, value.astype(np.float16).astype(np.float32))


def test_transposed_weight_is_caught_and_the_linear_op_is_named(block, packages, tmp_path):
    """The package holds proj.weight; PyTorch's program holds its transpose: the proj linear is the first wrong op."""
    path, _ = packages["fp32"]
    broken = Block()
    broken.load_state_dict(block.state_dict())
    with torch.no_grad():
        broken.proj.weight.copy_(block.proj.weight.t())
    reference = torch.export.export(broken.eval(), (torch.randn(1, 3, 16, 16),)).run_decompositions({})
    found = first_departure(MILInterpreter(load_program(path)), reference, X, precision="fp32")
    assert found is not None and found.op_type == "linear" and found.node == "linear"  # proj, not the head
    assert found.last_matching.startswith("layer_norm")  # the op before it still matched
    assert f"'{found.op}' (linear)" in found.describe()


def test_fp16_overflow_shows_up_and_the_overflowing_op_is_named(tmp_path):
    """proj's outputs reach ~1e4 (still fp16), their attention logits ~1e8: fine in fp32, inf in an fp16 buffer."""
    torch.manual_seed(0)
    loud = Block(scale=2e4)
    fp16_path, program = convert(loud, tmp_path, "fp16")
    with torch.no_grad():
        want = loud(torch.from_numpy(X)).numpy()
    assert np.isfinite(want).all()
    interpreter = MILInterpreter(load_program(fp16_path))
    got = interpreter.run({"input": X})[0]["logits"]
    report = parity.compare(want, got, 16, parity.FP16)
    assert not report.passed
    found = first_departure(interpreter, program, X, precision="fp16")
    assert found is not None and found.op_type == "matmul" and found.relative_error == float("inf")
    assert found.last_matching.startswith("linear")  # proj itself still fits in fp16
    assert found.compared >= 5
    # The same program at fp32 is fine: the failure is fp16 storage, not the interpreter.
    fp32_path, _ = convert(loud, tmp_path, "fp32")
    assert parity.compare(want, MILInterpreter(load_program(fp32_path)).run({"input": X})[0]["logits"], 16,
                          parity.FP32).passed


def test_an_op_without_semantics_is_cannot_verify_never_a_pass(packages, monkeypatch):
    monkeypatch.delitem(mil_ops.OPS, "softmax")
    interpreter = MILInterpreter(load_program(packages["fp32"][0]))
    assert interpreter.unsupported == ["softmax"]
    with pytest.raises(UnsupportedProgramError, match="cannot verify: op softmax"):
        interpreter.run({"input": X})

    from mobexport.export.targets.coreml.reference_check import ReferenceCheck
    from mobexport.export.targets.coreml.target import reference_runnable

    details, notes = {}, []
    reference = ReferenceCheck.prepare(packages["fp32"][0], None, "fp32", details, notes)
    assert details["parity_runtime"]["reference_interpreter"]["unsupported_ops"] == ["softmax"]
    assert any(n.startswith("cannot verify: op softmax") for n in notes)
    import sys

    if sys.platform != "darwin":
        runnable, why = reference_runnable(reference, image_input=False)
        assert not runnable and why.startswith("cannot verify: op softmax")


def test_parity_failure_message_carries_the_targets_explanation():
    failing = parity.compare(np.eye(2, dtype=np.float32), np.eye(2, dtype=np.float32)[::-1], 96, parity.FP32)
    with pytest.raises(ParityError, match="first departing MIL op: 'linear_3'"):
        parity.require([failing], "coreml artifact", explain=lambda report: "first departing MIL op: 'linear_3'")
    with pytest.raises(ParityError) as info:
        parity.require([failing], "coreml artifact", explain=lambda report: None)
    assert "departing" not in str(info.value)


def test_a_failing_core_ml_parity_names_the_first_wrong_op(packages, monkeypatch):
    """The target's explanation hook: an op with wrong semantics (softmax over the wrong axis) is named."""
    from types import SimpleNamespace

    from mobexport.export.targets.coreml.reference_check import ReferenceCheck
    from mobexport.export.targets.coreml.target import explain_with

    path, program = packages["fp32"]
    details = {}
    reference = ReferenceCheck.prepare(path, SimpleNamespace(program=program), "fp32", details, [])
    failing = parity.compare(np.eye(2, dtype=np.float32), np.eye(2, dtype=np.float32)[::-1], 16, parity.FP32)
    assert explain_with(reference, failing) is None  # the program itself is right

    monkeypatch.setitem(mil_ops.OPS, "softmax", lambda a: torch.softmax(a.t("x"), dim=0 if a.t("x").dim() < 3 else 1))
    why = explain_with(reference, failing)
    assert why.startswith("first departing MIL op: 'softmax") and "(softmax) vs PyTorch node 'softmax'" in why


def test_a_package_rewritten_after_lowering_is_read_again(packages, tmp_path):
    """--quantize int8-weights compresses the package in place after lower: parity must judge the new one."""
    import shutil

    from mobexport.export.targets.coreml.reference_check import ReferenceCheck

    shipped = tmp_path / "model.mlpackage"
    shutil.copytree(packages["fp32"][0], shipped)
    details = {}
    check = ReferenceCheck.prepare(shipped, None, "fp32", details, [])
    assert check.interpreter.fp16 is False and details["parity_runtime"]["reference_interpreter"]["fp16_program"] is False
    shutil.rmtree(shipped)
    shutil.copytree(packages["fp16"][0], shipped)
    assert check.interpreter.fp16 is True and details["parity_runtime"]["reference_interpreter"]["fp16_program"] is True


def test_on_macos_core_ml_and_the_interpreter_are_compared(packages):
    """CoreMLRunner with a second opinion: Core ML's answer is returned, the agreement goes to the callback."""
    from types import SimpleNamespace

    from mobexport.devices.runtimes.coreml import CoreMLReferenceRunner, CoreMLRunner
    from mobexport.devices.input_shapes import AcceptedInputs

    path = packages["fp32"][0]
    reference = CoreMLReferenceRunner(path, accepted=AcceptedInputs.static(16))
    expected = reference.infer(X)
    agreements = []
    runner = CoreMLRunner(path, accepted=AcceptedInputs.static(16), second_opinion=reference,
                          on_agreement=agreements.append)
    # Stand in for Core ML (macOS only): an answer a little off the interpreter's.
    runner.model = SimpleNamespace(predict=lambda feed: {"logits": expected + 1e-3})
    runner.input_name, runner.is_image, runner.labels, runner.output_name = "input", False, None, "logits"
    got = runner.infer(X)
    np.testing.assert_allclose(got, expected + 1e-3)
    runner.deactivate()
    (agreement,) = agreements
    assert agreement["samples"] == 1 and agreement["top1_agreement"] == 1.0
    assert agreement["max_abs_difference"] == pytest.approx(1e-3, rel=1e-2) and agreement["cosine"] > 0.99


def test_logits_below_fp16_range_are_explained_not_blamed_on_an_op(packages):
    """Random-init MobileNetV3's logits (~1e-8) flush to zero in any fp16 program: say so and how to avoid it."""
    from mobexport.export.targets.coreml.reference_check import ReferenceCheck

    path, program = packages["fp16"]
    check = ReferenceCheck.prepare(path, SimpleNamespace(program=program), "fp16", {}, [])
    tiny = np.array([[1e-8, -2e-8, 3e-9]], np.float32)
    report = parity.compare(tiny, np.zeros_like(tiny), 16, parity.FP16)
    assert not report.passed
    why = check.explain(report)
    assert "below fp16's smallest normal" in why and "--precision fp32" in why
