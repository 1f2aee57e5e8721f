"""Weight bytes, measured: what the float model holds vs what the artifact stores.

"int8 is 4x smaller" is checked, not assumed: the fp32 side is the bytes of
the float program's constants (parameters and buffers the graph uses, as
float32), the quantized side is the bytes of the constants the quantized form
actually stores (int8 weights plus their fp32 scales, biases and whatever was
kept float), read back from the file or program that ships.
"""

from __future__ import annotations

from pathlib import Path


def program_weight_bytes(program) -> int:
    """Bytes of the tensors an ``ExportedProgram``'s graph reads (parameters, buffers, constants)."""
    import torch

    signature = program.graph_signature
    sources = {**signature.inputs_to_parameters, **signature.inputs_to_buffers,
               **signature.inputs_to_lifted_tensor_constants}
    used = {n.name for n in program.graph.nodes if n.op == "placeholder" and n.users}
    total = 0
    for placeholder, name in sources.items():
        if placeholder not in used:
            continue
        tensor = program.state_dict.get(name)
        if tensor is None:
            tensor = program.constants.get(name)
        if isinstance(tensor, torch.Tensor):
            total += tensor.numel() * tensor.element_size()
    # Constants a converted graph module keeps as attributes (get_attr) rather than as inputs.
    module = program.graph_module
    for node in program.graph.nodes:
        if node.op == "get_attr":
            value = getattr(module, str(node.target), None)
            if isinstance(value, torch.Tensor):
                total += value.numel() * value.element_size()
    return total


def onnx_weight_bytes(path: Path) -> int:
    """Bytes of an ONNX file's initializers (and Constant-node tensors)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    total = sum(numpy_helper.to_array(i).nbytes for i in model.graph.initializer)
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.TENSOR:
                    total += numpy_helper.to_array(attr.t).nbytes
    return total


def mlpackage_weight_bytes(path: Path) -> int:
    """Bytes of a Core ML package's weight files (``Data/.../weights/*.bin``)."""
    weights = [p for p in Path(path).rglob("*") if p.is_file() and "weights" in p.parts]
    return sum(p.stat().st_size for p in weights)


def comparison(fp32_bytes: int, quantized_bytes: int, how: str) -> dict:
    return {
        "fp32_bytes": int(fp32_bytes),
        "quantized_bytes": int(quantized_bytes),
        "ratio": round(fp32_bytes / quantized_bytes, 2) if quantized_bytes else None,
        "measured_from": how,
    }
