"""TensorRT runner for serialized engines (``.engine``), on an NVIDIA GPU.

TensorRT 10's name-based I/O: the engine is deserialized by a
``trt.Runtime``, an execution context gets the input shape
(``set_input_shape``) and device addresses (``set_tensor_address``) of each
I/O tensor, and ``execute_async_v3`` enqueues the work on a CUDA stream.
Device buffers and the stream come from PyTorch's CUDA allocator, so no
separate CUDA binding (pycuda, cuda-python) is needed; that takes a CUDA
build of PyTorch on the GPU host.

An engine is specific to the GPU model and TensorRT version that built it:
one that does not deserialize is reported as such, with the way to rebuild it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mobexport.errors import DeviceError

from ..input_shapes import AcceptedInputs
from .runner import Runner


def nvidia_gpu() -> tuple[bool, str]:
    """(present, what): whether this host has an NVIDIA GPU, by ``nvidia-smi -L``."""
    from ..cuda import nvidia_smi

    ran, out = nvidia_smi("-L")
    if not ran:
        return False, out
    gpus = [line for line in out.splitlines() if line.startswith("GPU")]
    return (True, gpus[0]) if gpus else (False, "nvidia-smi lists no GPU")


class TensorRTRunner(Runner):
    """Runs a TensorRT engine on the first CUDA device (engines never run on a CPU)."""

    name = "tensorrt"

    def __init__(self, path: Path, accepted: AcceptedInputs | None = None):
        self.path = Path(path)
        self.accepted = accepted
        self.engine = None
        self.context = None

    def activate(self) -> None:
        import torch

        if not torch.cuda.is_available():
            raise DeviceError("TensorRT engines run on an NVIDIA GPU, and PyTorch sees no CUDA device here",
                              "run it on the GPU host, with a CUDA build of PyTorch installed")
        try:
            import tensorrt as trt
        except ImportError:
            raise DeviceError("TensorRT is not installed", "pip install tensorrt (NVIDIA's wheels)") from None
        self.trt = trt
        self.logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(self.logger)
        self.engine = runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise DeviceError(f"TensorRT could not deserialize '{self.path.name}' (built for another GPU or "
                              "TensorRT version?)", "rebuild it on this host with the trtexec command in its manifest")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(self.inputs) != 1 or not self.outputs:
            raise DeviceError(f"'{self.path.name}' has inputs {self.inputs} and outputs {self.outputs}; "
                              "expected one image input and a logits output")
        self.stream = torch.cuda.Stream()
        if self.accepted is None:
            self.accepted = self._accepted_from_engine()

    def _accepted_from_engine(self) -> AcceptedInputs:
        shape = tuple(self.engine.get_tensor_shape(self.inputs[0]))
        if all(d >= 0 for d in shape):
            return AcceptedInputs.static(int(shape[2]), batch=int(shape[0]))
        low, _, high = self.engine.get_tensor_profile_shape(self.inputs[0], 0)
        return AcceptedInputs(int(low[2]), int(high[2]), 1, batch=None if shape[0] < 0 else int(shape[0]))

    def deactivate(self) -> None:
        self.context = None
        self.engine = None

    def _torch_dtype(self, name: str):
        import torch

        return {
            self.trt.DataType.FLOAT: torch.float32,
            self.trt.DataType.HALF: torch.float16,
            self.trt.DataType.INT32: torch.int32,
            self.trt.DataType.INT64: torch.int64,
        }[self.engine.get_tensor_dtype(name)]

    def infer(self, x: np.ndarray) -> np.ndarray:
        import torch

        if self.context is None:
            self.activate()
        self.accepted.check(x.shape, f"TensorRT engine '{self.path.name}'")
        name = self.inputs[0]
        # Copies, allocations and the engine all go on one stream, so they run in order.
        with torch.cuda.stream(self.stream):
            feed = torch.from_numpy(np.ascontiguousarray(x)).to("cuda", dtype=self._torch_dtype(name))
            if not self.context.set_input_shape(name, tuple(feed.shape)):
                raise DeviceError(f"the engine refused input shape {tuple(feed.shape)}")
            self.context.set_tensor_address(name, feed.data_ptr())
            results = {}
            for out in self.outputs:
                shape = tuple(self.context.get_tensor_shape(out))
                results[out] = torch.empty(shape, dtype=self._torch_dtype(out), device="cuda")
                self.context.set_tensor_address(out, results[out].data_ptr())
            ok = self.context.execute_async_v3(self.stream.cuda_stream)
            logits = results[self.outputs[0]].float().cpu()  # waits for the stream
        self.stream.synchronize()
        if not ok:
            raise DeviceError(f"TensorRT failed to execute '{self.path.name}'", "run with --debug for TensorRT's log")
        return logits.numpy()

    def memory(self) -> dict:
        if self.engine is None:
            return {}
        size = getattr(self.engine, "device_memory_size_v2", None)
        if size is None:
            size = getattr(self.engine, "device_memory_size", None)
        return {"engine_device_memory_bytes": int(size)} if size is not None else {}


def open(path: Path, manifest: dict | None = None, device: str = "cpu") -> TensorRTRunner:
    """TensorRT on the GPU, whatever ``device`` says: engines run nowhere else."""
    return TensorRTRunner(path, accepted=AcceptedInputs.from_manifest(manifest))
