"""The export targets, listed explicitly: one package per target under ``export/targets/<id>/``.

A target package holds the target object (``target.py``), its options
(``options.py``: the single source of its defaults and of its CLI argument
group), its quantizers per mode (``quantizers.py``) and its ``prepare`` hook
for fused ops. Importing this module imports no converter and no torch: the
CLI reads options and quantizer tables from here before anything heavy loads.
"""

from __future__ import annotations

import importlib

from mobexport.errors import UnknownTargetError

# id -> class name in ``export/targets/<id>/target.py``; the order is the one users see.
TARGETS: dict[str, str] = {
    "onnx": "OnnxTarget",
    "executorch": "ExecuTorchTarget",
    "coreml": "CoreMLTarget",
    "tensorrt": "TensorRTTarget",
    "litert": "LiteRTTarget",
}


def target_names() -> list[str]:
    """Targets whose implementation ships with this version."""
    return list(TARGETS)


def check_name(name: str) -> None:
    if name not in TARGETS:
        raise UnknownTargetError(f"unknown target '{name}'", f"choose one of: {', '.join(target_names())}")


def get_target(name: str):
    """The target object for ``name`` (imports its converter-side module, not the converter itself)."""
    check_name(name)
    module = importlib.import_module(f"{__name__}.{name}.target")
    return getattr(module, TARGETS[name])()
