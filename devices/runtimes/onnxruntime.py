"""ONNX Runtime runner for ``.onnx`` artifacts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..input_shapes import AcceptedInputs
from .runner import Runner


class OnnxRuntimeRunner(Runner):
    """Runs an ONNX file with ONNX Runtime.

    ``threads`` sets intra-op threads (0 = runtime default). Worker threads
    spin after each run by default; we disable spinning so back-to-back runners
    in one process do not slow each other down (measured: 3x on 2 cores).
    """

    name = "onnxruntime"

    def __init__(self, path: Path, providers: list[str] | None = None, threads: int = 0,
                 profile_dir: Path | None = None, accepted: AcceptedInputs | None = None):
        self.path = Path(path)
        self.accepted = accepted
        self.providers = providers or ["CPUExecutionProvider"]
        self.threads = threads
        self.profile_dir = profile_dir
        self.session = None

    def activate(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = self.threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        if self.profile_dir is not None:
            options.enable_profiling = True
            options.profile_file_prefix = str(Path(self.profile_dir) / "ort_profile")
        self.session = ort.InferenceSession(str(self.path), options, providers=self.providers)
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        if self.accepted is None:
            self.accepted = _accepted_from_shape(model_input.shape)

    def deactivate(self) -> None:
        self.session = None

    def infer(self, x: np.ndarray) -> np.ndarray:
        return self.infer_all(x)[0]

    def infer_all(self, x: np.ndarray) -> list[np.ndarray]:
        """Every output of the model (a model with several outputs: parity compares each)."""
        if self.session is None:
            self.activate()
        if self.accepted is not None:
            self.accepted.check(x.shape, f"ONNX model '{self.path.name}'")
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})

    def end_profiling(self) -> str | None:
        return self.session.end_profiling() if self.session is not None and self.profile_dir else None


def _accepted_from_shape(shape: list) -> AcceptedInputs | None:
    """A static [N, 3, H, W] input says exactly what it takes; a symbolic one is checked by ORT itself."""
    if len(shape) == 4 and all(isinstance(d, int) for d in shape):
        return AcceptedInputs.static(shape[2], batch=shape[0], width=shape[3])
    return None


def open(path: Path, manifest: dict | None = None, device: str = "cpu") -> OnnxRuntimeRunner:
    """ONNX Runtime on this CPU, or with the CUDA provider first for ``device="cuda"``."""
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else None
    return OnnxRuntimeRunner(path, providers=providers, accepted=AcceptedInputs.from_manifest(manifest))
