"""LiteRT (TensorFlow Lite) runner for ``.tflite`` artifacts.

The interpreter of ``ai-edge-litert`` applies its default delegate, XNNPACK,
to every op it supports; the rest run on LiteRT's reference (builtin) kernels.
``threads`` sets the interpreter's threads (0 = LiteRT's default).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mobexport.errors import DeviceError, first_line

from ..input_shapes import AcceptedInputs
from .runner import Runner


class LiteRTRunner(Runner):
    """Runs a ``.tflite`` file with the LiteRT interpreter (XNNPACK delegate on by default)."""

    name = "litert"

    def __init__(self, path: Path, threads: int = 0, xnnpack: bool = True, accepted: AcceptedInputs | None = None):
        self.path = Path(path)
        self.threads = threads
        self.xnnpack = xnnpack
        self.accepted = accepted
        self.interpreter = None

    def activate(self) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = OpResolverType.AUTO if self.xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            self.interpreter = Interpreter(model_path=str(self.path), num_threads=self.threads or None,
                                           experimental_op_resolver_type=resolver)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise DeviceError(f"LiteRT cannot load '{self.path.name}': {first_line(exc, 200)}",
                              "re-export it with this mobexport") from None
        inputs = self.interpreter.get_input_details()
        if len(inputs) != 1:
            raise DeviceError(f"'{self.path.name}' has {len(inputs)} inputs; mobexport artifacts take one image batch")
        self.input = inputs[0]
        self.outputs = self.interpreter.get_output_details()
        if self.accepted is None:
            shape = [int(s) for s in self.input["shape"]]
            if len(shape) == 4 and shape[2] == shape[3]:
                self.accepted = AcceptedInputs.static(shape[2], batch=shape[0])

    def deactivate(self) -> None:
        self.interpreter = None

    def infer(self, x: np.ndarray) -> np.ndarray:
        if self.interpreter is None:
            self.activate()
        if self.accepted is not None:
            self.accepted.check(x.shape, f"LiteRT model '{self.path.name}'")
        self.interpreter.set_tensor(self.input["index"], np.ascontiguousarray(x, dtype=np.float32))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.outputs[0]["index"])


def open(path: Path, manifest: dict | None = None, device: str = "cpu") -> LiteRTRunner:
    if device not in ("cpu", "local"):
        raise DeviceError(f"LiteRT models run on the CPU here, not on '{device}'",
                          "use --device local, or adb for a phone")
    return LiteRTRunner(path, accepted=AcceptedInputs.from_manifest(manifest))
