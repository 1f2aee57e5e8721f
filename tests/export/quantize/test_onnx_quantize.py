"""ONNX quantizers on a small hand-built CNN: int8 QDQ, the float fallback, weights-only int8, fp16."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from mobexport.export.quantize import sensitivity as sens  # noqa: E402
from mobexport.export.quantize.calibration import CalibrationSet  # noqa: E402
from mobexport.export.quantize.onnx_fp16 import convert_fp16  # noqa: E402
from mobexport.export.quantize.onnx_static import float_island, quantize_int8  # noqa: E402
from mobexport.export.quantize.onnx_weights import quantize_weights  # noqa: E402
from mobexport.export.quantize.sizes import onnx_weight_bytes  # noqa: E402

RES = 16


def tiny_cnn(path, seed: int = 0):
    """Conv(3->16) Relu Conv(16->32) Relu GlobalAveragePool Flatten Gemm(32->10)."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.3, (16, 3, 3, 3)).astype(np.float32)
    w2 = rng.normal(0, 0.1, (32, 16, 3, 3)).astype(np.float32)
    w3 = rng.normal(0, 0.5, (10, 32)).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in
             ((w1, "w1"), (np.zeros(16, np.float32), "b1"), (w2, "w2"), (np.zeros(32, np.float32), "b2"),
              (w3, "w3"), (np.zeros(10, np.float32), "b3"))]
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["logits"], name="head", transB=1),
    ]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                             [1, 3, RES, RES])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def calibration(n: int, seed: int = 1) -> CalibrationSet:
    x = np.random.default_rng(seed).normal(0, 1, (n, 3, RES, RES)).astype(np.float32)
    return CalibrationSet(inputs=x, source="synthetic", resolution=RES)


def run(path, inputs):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {"input": x[None]})[0] for x in inputs])


def ops(path) -> Counter:
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


@pytest.fixture
def float_model(tmp_path):
    return tiny_cnn(tmp_path / "float.onnx")


def test_int8_is_qdq_with_per_channel_weights_and_close_to_float(tmp_path, float_model):
    result = quantize_int8(float_model, tmp_path / "int8.onnx", calibration(16))
    model = onnx.load(str(result.path))
    counts = ops(result.path)
    assert counts["QuantizeLinear"] >= 2 and counts["DequantizeLinear"] >= 4
    initializers = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    weight_dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in initializers
                 and initializers[n.input[0]].dtype == np.int8 and initializers[n.input[0]].ndim == 4]
    assert {initializers[n.input[1]].shape for n in weight_dq} == {(32,)}  # one scale per output channel
    # The stem reads the image unquantized, with its fp32 weights.
    stem = next(n for n in model.graph.node if n.name == "conv1")
    assert stem.input[:2] == ["input", "w1"] and initializers["w1"].dtype == np.float32
    assert result.scheme["float_input_layers"] == ["conv1"] and result.float_island == ["conv1"]
    held_out = calibration(8, seed=2).inputs
    assert sens.sqnr_db(run(float_model, held_out), run(result.path, held_out)) > 25
    assert result.float_layers == [] and result.sensitivity["layers_measured"] == 2
    assert onnx_weight_bytes(float_model) / onnx_weight_bytes(result.path) > 2.5


def token_attention(path):
    """Conv stem, then tokens ``t = Wx`` attend to themselves: ``softmax(t t^T) t`` and a Mul: only weights go int8."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(a, n) for a, n in (
        (rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32), "w1"),
        (rng.normal(0, 0.3, (8, 8, 1, 1)).astype(np.float32), "w2"),
        (rng.normal(0, 0.3, (8, 8)).astype(np.float32), "wq"),
        (np.array([1, 8, -1], np.int64), "shape"))]
    nodes = [
        helper.make_node("Conv", ["input", "w1"], ["c1"], name="stem", pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["c1", "w2"], ["c2"], name="pw"),
        helper.make_node("Reshape", ["c2", "shape"], ["x"], name="flatten"),
        helper.make_node("Transpose", ["x"], ["t"], name="tokens", perm=[0, 2, 1]),
        helper.make_node("MatMul", ["t", "wq"], ["q"], name="q_proj"),
        helper.make_node("MatMul", ["q", "x"], ["scores"], name="scores"),
        helper.make_node("Softmax", ["scores"], ["attn"], name="softmax", axis=-1),
        helper.make_node("MatMul", ["attn", "t"], ["mixed"], name="mix"),
        helper.make_node("Mul", ["mixed", "q"], ["out"], name="gate"),
    ]
    graph = helper.make_graph(nodes, "attention", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                                  [1, 3, RES, RES])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def test_int8_quantizes_weighted_ops_and_leaves_attention_products_and_elementwise_float(tmp_path):
    result = quantize_int8(token_attention(tmp_path / "attention.onnx"), tmp_path / "int8.onnx", calibration(8),
                           mixed_precision=False)
    model = onnx.load(str(result.path))
    nodes = {n.name: n for n in model.graph.node}
    producer = {out: n.op_type for n in model.graph.node for out in n.output}
    # int8 compute is DQ -> op -> Q: weighted ops get both, the rest keeps a float output.
    quantized = {n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear"}
    for name in ("pw", "q_proj"):
        assert all(producer.get(i) == "DequantizeLinear" for i in nodes[name].input[:2]), name
        assert nodes[name].output[0] in quantized, name
    assert not {nodes[n].output[0] for n in ("scores", "softmax", "mix", "gate")} & quantized
    assert all(producer.get(i) != "DequantizeLinear" for i in nodes["stem"].input)


def with_rare_outlier(calib: CalibrationSet, factor: float = 40.0) -> CalibrationSet:
    """One calibration input ``factor`` times brighter: MinMax ranges then crush every ordinary input."""
    x = calib.inputs.copy()
    x[0] *= factor
    return CalibrationSet(inputs=x, source="synthetic", resolution=RES)


def test_a_tensor_int8_crushes_is_kept_float_and_that_helps(tmp_path, float_model):
    data, held_out = with_rare_outlier(calibration(16)), calibration(8, seed=2).inputs
    plain = quantize_int8(float_model, tmp_path / "plain.onnx", data, mixed_precision=False)
    # The rare input inflates every range downstream of it: allow all of them to go float here
    # (the default cap of a quarter of the layers is checked in test_sensitivity).
    mixed = quantize_int8(float_model, tmp_path / "mixed.onnx", data, max_float_fraction=1.0)
    chosen = {layer.name: layer for layer in mixed.float_layers}
    assert chosen and all(layer.cause == "output" and layer.sqnr_db < sens.DEFAULT_THRESHOLD_DB
                          for layer in chosen.values()), mixed.sensitivity
    # The island: each chosen layer and the consumers of its output are float, and their weights int8 on disk.
    model = onnx.load(str(mixed.path))
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    for node in model.graph.node:
        if node.name in mixed.float_island:
            assert all(producers.get(i) != "DequantizeLinear" or i.endswith("_dequantized")
                       for i in node.input[:1]), node.name
    assert mixed.sensitivity["island_weights"].startswith("int8")
    assert onnx_weight_bytes(float_model) / onnx_weight_bytes(mixed.path) > 3.0
    reference = run(float_model, held_out)
    plain_db, mixed_db = sens.sqnr_db(reference, run(plain.path, held_out)), sens.sqnr_db(reference, run(mixed.path, held_out))
    assert mixed_db > plain_db + 6, (plain_db, mixed_db)
    assert mixed.sensitivity["output_sqnr_db"]["all_int8"] < mixed.sensitivity["output_sqnr_db"]["mixed"]


def test_float_island_of_a_weight_problem_makes_the_input_float(float_model):
    model = onnx.load(str(float_model))
    conv2 = sens.LayerSensitivity("conv2", "Conv", "", 40.0, 10.0)
    island, keep_fp32 = float_island(model, [conv2])
    assert set(island) == {"conv2", "relu1", "conv1"} and keep_fp32 == {"conv2"}
    relu2 = sens.LayerSensitivity("conv2", "Conv", "", 10.0, 60.0)
    island, keep_fp32 = float_island(model, [relu2])
    assert island == ["conv2", "relu2", "pool"] and keep_fp32 == set()


def test_weights_only_stores_int8_weights_and_keeps_activations_float(tmp_path, float_model):
    result = quantize_weights(float_model, tmp_path / "w8.onnx")
    assert sorted(result.quantized) == ["w1", "w2", "w3"]
    counts = ops(result.path)
    assert counts["DequantizeLinear"] == 3 and counts["QuantizeLinear"] == 0
    model = onnx.load(str(result.path))
    dq_axes = {n.input[0]: next(a.i for a in n.attribute if a.name == "axis")
               for n in model.graph.node if n.op_type == "DequantizeLinear"}
    assert dq_axes == {"w1_int8": 0, "w2_int8": 0, "w3_int8": 0}  # Gemm transB=1: rows are output channels
    assert onnx_weight_bytes(float_model) / onnx_weight_bytes(result.path) > 3.5
    held_out = calibration(8, seed=2).inputs
    assert sens.sqnr_db(run(float_model, held_out), run(result.path, held_out)) > 35


def test_fp16_keeps_float32_io_and_matches(tmp_path, float_model):
    facts = convert_fp16(float_model, tmp_path / "fp16.onnx")
    model = onnx.load(str(tmp_path / "fp16.onnx"))
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert {i.data_type for i in model.graph.initializer if i.name.startswith("w")} == {TensorProto.FLOAT16}
    held_out = calibration(4, seed=2).inputs
    reference, half = run(float_model, held_out), run(tmp_path / "fp16.onnx", held_out)
    assert np.abs(reference - half).max() < 1e-2 and sens.sqnr_db(reference, half) > 40
    assert facts["io"].startswith("fp32")
