"""Pass registry and the default pipeline.

A pass registers under its id, which equals its file name and snake-cases its
class name (``fold_dynamic_relu.py`` holds ``FoldDynamicReluPass``).
``resolve("default" | "none" | "a,b")`` turns the CLI's ``--passes`` into an
ordered list, honouring each pass's ``after`` constraints.
"""

from __future__ import annotations

import difflib
import importlib
from pathlib import Path

from mobexport.errors import UnknownPassError

from .base import GraphPass

# The default pipeline, in order. A module listed here that is not present in
# this version is simply not part of it.
DEFAULT_PIPELINE = (
    "fold_batchnorm",
    "fuse_dwconv_ffn",
    "split_depthwise_multiplier",
    "fold_dynamic_relu",
    "projection_free_attention",
)

_PASSES: dict[str, type[GraphPass]] = {}


def register_pass(cls: type[GraphPass]) -> type[GraphPass]:
    if cls.id in _PASSES:
        raise ValueError(f"pass {cls.id!r} registered twice")
    _PASSES[cls.id] = cls
    return cls


def _load() -> None:
    here = Path(__file__).parent
    for path in sorted(here.glob("*.py")):
        if path.stem not in ("__init__", "base", "registry", "manager"):
            importlib.import_module(f"{__package__}.{path.stem}")


def available_passes() -> list[str]:
    _load()
    return sorted(_PASSES)


def default_pipeline() -> list[str]:
    _load()
    return [p for p in DEFAULT_PIPELINE if p in _PASSES]


def resolve(spec: str) -> list[GraphPass]:
    """Ordered pass instances for ``default``, ``none`` or a comma-separated list of ids."""
    _load()
    spec = spec.strip()
    if spec == "none":
        return []
    ids = default_pipeline() if spec == "default" else [s.strip() for s in spec.split(",") if s.strip()]
    for pass_id in ids:
        if pass_id not in _PASSES:
            close = difflib.get_close_matches(pass_id, list(_PASSES), n=2)
            hint = f"did you mean {', '.join(close)}?" if close else f"choose from: default, none, {', '.join(sorted(_PASSES))}"
            raise UnknownPassError(f"unknown pass '{pass_id}'", hint)
    return [_PASSES[i]() for i in _ordered(ids)]


def _ordered(ids: list[str]) -> list[str]:
    """Stable topological order: a pass runs after the listed passes it declares in ``after``."""
    placed: list[str] = []
    pending = list(dict.fromkeys(ids))
    while pending:
        for pass_id in pending:
            deps = [d for d in _PASSES[pass_id].after if d in pending and d != pass_id]
            if not deps:
                placed.append(pass_id)
                pending.remove(pass_id)
                break
        else:
            raise UnknownPassError(f"passes {', '.join(pending)} depend on each other in a cycle", "report this bug")
    return placed
