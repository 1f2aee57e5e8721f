"""fp16 ONNX: weights and compute in float16, inputs and outputs kept float32.

ONNX Runtime's own converter (``onnxruntime.transformers.float16``) casts the
initializers and every op to float16 and, with ``keep_io_types``, inserts Casts
at the graph's edges, so callers feed the same float32 arrays as to every other
artifact. Ops ORT has no float16 kernel for on a provider run after an
automatic cast back, which on a desktop CPU is slower than fp32: fp16 ONNX is
for GPUs and phone NPUs (CUDA / TensorRT / NNAPI / Core ML providers); here it
is checked for parity only.
"""

from __future__ import annotations

import warnings
from pathlib import Path


def convert_fp16(float_path: Path, out_path: Path) -> dict:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(float_path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        half = convert_float_to_float16(model, keep_io_types=True)
    topological_sort(half.graph)  # the converter appends its input Casts at the end
    onnx.checker.check_model(half)
    onnx.save(half, str(out_path))
    return {"format": "float16", "weights": "fp16", "activations": "fp16", "io": "fp32 (Cast at the edges)",
            "tool": "onnxruntime.transformers.float16.convert_float_to_float16"}


def topological_sort(graph) -> None:
    """Reorder ``graph.node`` in place so that every node comes after the producers of its inputs."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(name in available for name in n.input)]
        if not ready:
            raise ValueError("graph has a cycle or an input nothing produces")
        for node in ready:
            ordered.append(node)
            available.update(node.output)
        pending = [n for n in pending if all(n is not r for r in ready)]
    copies = [type(n)() for n in ordered]
    for copy, node in zip(copies, ordered):
        copy.CopyFrom(node)
    del graph.node[:]
    graph.node.extend(copies)
