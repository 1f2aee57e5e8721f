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


def options_class(name: str):
    """The target's options dataclass (``export/targets/<id>/options.py``), without importing the target."""
    check_name(name)
    module = importlib.import_module(f"{__name__}.{name}.options")
    from .options import TargetOptions

    return next(v for v in vars(module).values()
                if isinstance(v, type) and issubclass(v, TargetOptions) and v is not TargetOptions
                and v.target == name)


def option_classes() -> list:
    """Every registered target's options dataclass, in registry order."""
    return [options_class(name) for name in TARGETS]


def quantizers_of(name: str) -> dict:
    """The target's quantizers by mode (``export/targets/<id>/quantizers.py``), without importing the target."""
    check_name(name)
    return importlib.import_module(f"{__name__}.{name}.quantizers").QUANTIZERS
