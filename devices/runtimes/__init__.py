"""Runtimes that run an artifact: one module per artifact kind, opened by this small registry.

The key is the artifact kind the manifest records (``artifact.kind``; older
manifests are read by the file's suffix). Each runtime module has
``open(path, manifest, device) -> Runner``. Nothing here imports ``export``:
runtimes know artifacts, not how they were made.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from mobexport.errors import DeviceError

# Artifact kinds. Eager PyTorch (a zoo model, no file) is a kind of its own.
ONNX = "onnx"
EXECUTORCH = "executorch"
COREML = "coreml"
TENSORRT = "tensorrt"
LITERT = "litert"
EAGER = "pytorch"


@dataclass(frozen=True)
class Runtime:
    kind: str
    module: str         # the runtime module under devices/runtimes/
    package: str        # what it imports to run (imported before a case's idle memory baseline)
    suffix: str | None  # the artifact file's suffix
    where: str          # which devices run it


RUNTIMES: dict[str, Runtime] = {r.kind: r for r in (
    Runtime(ONNX, "onnxruntime", "onnxruntime", ".onnx", "ONNX models run on --device local, cuda or adb"),
    Runtime(EXECUTORCH, "executorch", "executorch.runtime", ".pte", "ExecuTorch programs run on --device local or adb"),
    Runtime(COREML, "coreml", "coremltools", ".mlpackage", "Core ML artifacts run on --device macos"),
    Runtime(TENSORRT, "tensorrt", "tensorrt", ".engine", "TensorRT engines run on --device cuda"),
    Runtime(LITERT, "litert", "ai_edge_litert.interpreter", ".tflite", "LiteRT models run on --device local or adb"),
    Runtime(EAGER, "torch", "torch", None, "eager PyTorch runs on --device local"),
)}


def kind_of(path: Path | str | None, manifest: dict | None = None) -> str:
    """The artifact kind: what the manifest records, else what the file's suffix says."""
    recorded = ((manifest or {}).get("artifact") or {}).get("kind")
    if recorded:
        return recorded
    suffix = Path(path).suffix if path is not None else ""
    for runtime in RUNTIMES.values():
        if runtime.suffix == suffix:
            return runtime.kind
    raise DeviceError(f"no runtime opens '{Path(path).name if path else path}'",
                      f"artifacts end in {', '.join(r.suffix for r in RUNTIMES.values() if r.suffix)}")


def runtime(kind: str) -> Runtime:
    if kind not in RUNTIMES:
        raise DeviceError(f"unknown artifact kind '{kind}'", f"known kinds: {', '.join(RUNTIMES)}")
    return RUNTIMES[kind]


def open_runner(path: Path | str, manifest: dict | None = None, device: str = "cpu", kind: str | None = None):
    """A runner (not yet activated) for the artifact at ``path`` on ``device``."""
    found = runtime(kind or kind_of(path, manifest))
    module = importlib.import_module(f"{__name__}.{found.module}")
    return module.open(Path(path), manifest, device)


def where_it_runs(kind: str) -> str:
    return RUNTIMES[kind].where if kind in RUNTIMES else "see 'mobexport devices'"
