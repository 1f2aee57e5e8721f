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
    onnx.checker.check_model(half)
    onnx.save(half, str(out_path))
    return {"format": "float16", "weights": "fp16", "activations": "fp16", "io": "fp32 (Cast at the edges)",
            "tool": "onnxruntime.transformers.float16.convert_float_to_float16"}
