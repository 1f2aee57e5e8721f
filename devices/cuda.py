"""An NVIDIA GPU on this host: TensorRT engines and ONNX Runtime's CUDA provider.

Cases run in the same per-case worker as the local CPU (``device="cuda"`` is
passed to the target's ``load``). Host-side peak RSS is recorded as for the
CPU; GPU memory is what ``nvidia-smi`` reports for the worker, when it can.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess

from mobexport.errors import DeviceError

from .device import Availability, Device
from .local import SubprocessDevice, host_fingerprint
from .runtimes import ONNX, TENSORRT


def nvidia_smi(*query: str) -> tuple[bool, str]:
    """(ran, stdout) of ``nvidia-smi ARGS``."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return False, "nvidia-smi not found on PATH"
    try:
        proc = subprocess.run([exe, *query], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"nvidia-smi failed ({exc})"
    if proc.returncode != 0:
        return False, (proc.stderr or proc.stdout).strip().splitlines()[0] if (proc.stderr or proc.stdout).strip() \
            else f"nvidia-smi exited with status {proc.returncode}"
    return True, proc.stdout


def ort_has_cuda() -> bool:
    if importlib.util.find_spec("onnxruntime") is None:
        return False
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def tensorrt_installed() -> bool:
    return importlib.util.find_spec("tensorrt") is not None


class CudaDevice(SubprocessDevice):
    """The first NVIDIA GPU of this host."""

    kinds = (TENSORRT, ONNX)
    runtime_device = "cuda"

    @property
    def name(self) -> str:
        return "cuda"

    def availability(self) -> Availability:
        ran, out = nvidia_smi("-L")
        if not ran:
            return Availability(False, f"no NVIDIA GPU ({out})")
        if not out.strip():
            return Availability(False, "nvidia-smi lists no GPU")
        if not (ort_has_cuda() or tensorrt_installed()):
            return Availability(False, "a GPU is present but neither TensorRT nor onnxruntime-gpu is installed "
                                       "(pip install tensorrt onnxruntime-gpu)")
        return Availability(True)

    def check_kind(self, kind: str) -> None:
        Device.check_kind(self, kind)
        if kind == ONNX and not ort_has_cuda():
            raise DeviceError("ONNX Runtime here has no CUDA execution provider", "pip install onnxruntime-gpu")
        if kind == TENSORRT and not tensorrt_installed():
            raise DeviceError("TensorRT is not installed", "pip install tensorrt (NVIDIA's wheels)")

    def info(self) -> dict:
        info = {"name": self.name, **host_fingerprint()}
        ran, out = nvidia_smi("--query-gpu=name,driver_version,memory.total", "--format=csv,noheader")
        if ran and out.strip():
            gpu, driver, memory = (part.strip() for part in out.strip().splitlines()[0].split(",", 2))
            info.update(gpu=gpu, driver=driver, gpu_memory=memory)
        return info
