"""Graph rewrites over torch.export programs: one pass per module, listed in ``registry.py``.

Where things live: ``base.py`` (what a pass is, its one run loop, cleanup),
``ops.py`` (the ATen vocabulary and graph helpers every pass shares),
``builder.py`` (adding nodes and constants with shape metadata),
``manager.py`` (running passes over a program, verify mode), ``registry.py``
(the explicit list, the default pipeline, old names). Names are imported on
first use, so reading the registry does not import torch.
"""

import importlib

_HOMES = {
    "GraphPass": "base", "PassResult": "base", "Skip": "base", "Mismatch": "base", "check": "base",
    "PassVerificationError": "manager", "rewrite": "manager", "run_passes": "manager",
    "available_passes": "registry", "default_pipeline": "registry", "register_pass": "registry",
    "resolve": "registry",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
