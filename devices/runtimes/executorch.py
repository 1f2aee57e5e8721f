"""ExecuTorch runner for ``.pte`` programs, through the ExecuTorch Python runtime.

The pip wheel's runtime links the portable kernels and the XNNPACK delegate,
so a program lowered either way runs here as it would on a phone's CPU (same
kernels, another core). Sizes are checked before the runtime sees them: a
static program given another size fails inside the runtime with an error code
only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mobexport.errors import DeviceError, first_line

from ..input_shapes import AcceptedInputs
from .runner import Runner

_DELEGATE_BACKENDS = {"xnnpack": "XnnpackBackend"}
# Delegates beyond XNNPACK: the runtime backend a program delegated to each needs, and what running it needs.
# The pip wheel's runtime has neither, so such programs are produced here and run on devices that have them.
DELEGATE_RUNTIMES = {
    "vulkan": ("VulkanBackend",
               "an Android GPU with Vulkan and an executor_runner built with -DEXECUTORCH_BUILD_VULKAN=ON"),
    "coreml": ("CoreMLBackend",
               "an Apple device (iOS or macOS) with an ExecuTorch runtime built with -DEXECUTORCH_BUILD_COREML=ON"),
}


def runtime_backend(backend: str | None) -> str | None:
    """The runtime's backend id a program delegated to ``backend`` needs (None for non-delegates)."""
    entry = DELEGATE_RUNTIMES.get(backend or "")
    return entry[0] if entry else None


def delegate_available_here(backend: str) -> bool:
    """Whether this host's ExecuTorch runtime has the delegate's backend registered."""
    try:
        from executorch.runtime import Runtime

        return bool(Runtime.get().backend_registry.is_available(DELEGATE_RUNTIMES[backend][0]))
    except Exception:
        return False


def delegate_runs_here(backend: str) -> tuple[bool, str]:
    """(whether a program delegated to ``backend`` runs on this host, why not) — for parity."""
    if backend in DELEGATE_RUNTIMES and not delegate_available_here(backend):
        return False, (f"this host's ExecuTorch runtime has no {runtime_backend(backend)}; running the program "
                       f"needs {DELEGATE_RUNTIMES[backend][1]}")
    return True, ""


def cannot_run_here(backend: str, where: str) -> DeviceError:
    """The error for a delegated program on a device without its engine."""
    return DeviceError(f"cannot run here: a {backend}-delegated .pte needs {DELEGATE_RUNTIMES[backend][1]}; "
                       f"{where} has none", "run it on such a device, or export with --backend xnnpack for this one")
# Constant methods mobexport writes into each program: min, max and step of the sizes it accepts.
ACCEPTS_METHODS = ("mobexport_min_resolution", "mobexport_max_resolution", "mobexport_resolution_stride")


class ExecuTorchRunner(Runner):
    """Runs the ``forward`` method of a ``.pte`` file.

    ``accepted`` says which input sizes the program takes (from the manifest);
    without it, the program says so itself (constant methods written at
    export), or else its planned input size is the only one taken.
    ``threads`` > 0 resizes the runtime's (process-wide) thread pool.
    """

    name = "executorch"

    def __init__(self, path: Path, accepted: AcceptedInputs | None = None, threads: int = 0,
                 backend: str | None = None):
        self.path = Path(path)
        self.accepted = accepted
        self.threads = threads
        self.backend = backend
        self.program = None
        self.method = None

    def activate(self) -> None:
        from executorch.runtime import Runtime

        if not self.path.is_file():
            raise DeviceError(f"no ExecuTorch program at '{self.path}'", "export one with --target executorch")
        runtime = Runtime.get()
        needed = _DELEGATE_BACKENDS.get(self.backend or "") or runtime_backend(self.backend)
        if needed and not runtime.backend_registry.is_available(needed):
            if self.backend in DELEGATE_RUNTIMES:
                raise cannot_run_here(self.backend, "this host")
            raise DeviceError(f"this ExecuTorch runtime has no {needed}",
                              "reinstall executorch from pip, or export with --backend portable")
        if self.threads > 0:
            from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool

            _unsafe_reset_threadpool(self.threads)
        try:
            self.program = runtime.load_program(self.path)
            self.method = self.program.load_method("forward")
        except RuntimeError as exc:
            raise DeviceError(f"ExecuTorch could not load '{self.path.name}' ({first_line(exc, 200)})",
                              "re-export it with this executorch version") from None
        if self.accepted is None:
            self.accepted = self._accepted_from_program()

    def _accepted_from_program(self) -> AcceptedInputs:
        sizes = self.method.metadata.input_tensor_meta(0).sizes()
        batch = int(sizes[0])
        if set(ACCEPTS_METHODS) <= self.program.method_names:
            low, high, step = (int(self.program.load_method(m).execute([])[0]) for m in ACCEPTS_METHODS)
            if low != high:
                return AcceptedInputs(low, high, step, batch)
        return AcceptedInputs.static(int(sizes[2]), batch=batch, width=int(sizes[3]))

    def deactivate(self) -> None:
        self.method = None
        self.program = None

    def infer(self, x: np.ndarray) -> np.ndarray:
        import torch

        if self.method is None:
            self.activate()
        self.accepted.check(x.shape, f"ExecuTorch program '{self.path.name}'")
        try:
            outputs = self.method.execute([torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))])
            self._last_outputs = outputs
        except RuntimeError as exc:
            # The runtime's own words are a status code; its log above says which delegate call failed.
            raise DeviceError(f"the ExecuTorch runtime failed to run '{self.path.name}' ({first_line(exc)})",
                              "export without --quantize, or with --backend portable, and report this") from exc
        return outputs[0].detach().numpy().copy()

    def infer_all(self, x: np.ndarray) -> list[np.ndarray]:
        """Every output of the program (a model with several outputs: parity compares each)."""
        self.infer(x)
        return [o.detach().numpy().copy() for o in self._last_outputs]

    def memory(self) -> dict:
        """Planned I/O tensor sizes the program reports (its arenas are in the manifest)."""
        if self.method is None:
            return {}
        meta = self.method.metadata
        return {
            "input_bytes": sum(meta.input_tensor_meta(i).nbytes() for i in range(meta.num_inputs())),
            "output_bytes": sum(meta.output_tensor_meta(i).nbytes() for i in range(meta.num_outputs())),
        }


def open(path: Path, manifest: dict | None = None, device: str = "cpu") -> ExecuTorchRunner:
    if device != "cpu":
        raise DeviceError(f"ExecuTorch programs run on the CPU here, not on '{device}'", "use --device local")
    backend = ((manifest or {}).get("target_details") or {}).get("backend")
    return ExecuTorchRunner(path, accepted=AcceptedInputs.from_manifest(manifest), backend=backend)
