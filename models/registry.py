"""The model zoo's registry.

A variant is a small factory decorated with its :class:`ModelSpec`::

    @register_model(ModelSpec(name="mobile_former_294m", family="mobile_former", ...))
    def mobile_former_294m(num_classes: int = 1000, **overrides) -> nn.Module: ...

Family modules register on import; :func:`_load_families` imports them all
lazily, so ``import mobexport.models`` stays cheap and there is no implicit
global set up at import time of unrelated modules.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch.nn as nn

from mobexport.errors import UnknownModelError

from .spec import ModelSpec

FAMILY_MODULES = (
    "mobile_former",
    "mobilenetv3",
    "cmt",
    "poolformer",
    "vit",
    "resnet",
    "visual_transformer",
)


@dataclass(frozen=True)
class _Entry:
    spec: ModelSpec
    factory: Callable[..., nn.Module]


_REGISTRY: dict[str, _Entry] = {}
_families_loaded = False


def register_model(spec: ModelSpec) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register ``factory`` under ``spec.name``."""

    def decorate(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if spec.name in _REGISTRY:
            raise ValueError(f"model {spec.name!r} registered twice")
        _REGISTRY[spec.name] = _Entry(spec, factory)
        return factory

    return decorate


def _load_families() -> None:
    global _families_loaded
    if _families_loaded:
        return
    here = Path(__file__).parent
    for family in FAMILY_MODULES:
        if (here / f"{family}.py").exists():
            importlib.import_module(f"{__package__}.{family}")
    _families_loaded = True


def list_models(pattern: str | None = None) -> list[str]:
    """Names of registered variants, sorted, optionally filtered by a glob."""
    _load_families()
    names = sorted(_REGISTRY)
    if pattern:
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    return names


def match_models(query: str) -> list[str]:
    """Names a user's query means: a glob (``cmt_*``), else the exact name, else every name with it as a prefix
    or substring (``cmt``, ``former``; case, ``-`` and ``_`` do not matter). Empty if nothing matches."""
    names = list_models()
    if any(ch in query for ch in "*?["):
        return [n for n in names if fnmatch.fnmatchcase(n.lower(), query.lower())]
    if query in names:
        return [query]
    key = query.lower().replace("-", "_")
    return [n for n in names if n.startswith(key)] or [n for n in names if key in n]


def closest_models(query: str, n: int = 3) -> list[str]:
    """The zoo names nearest to a query that matched nothing (for "did you mean")."""
    key = query.lower().replace("-", "_").strip("*?[]")
    return difflib.get_close_matches(key, list_models(), n=n, cutoff=0.4)


def smallest_per_family() -> list[str]:
    """The variant with the fewest reference MACs of each family, in family order: the zoo at its cheapest."""
    best: dict[str, str] = {}
    for name in list_models():
        spec = get_spec(name)
        if spec.family not in best or spec.reference_macs < get_spec(best[spec.family]).reference_macs:
            best[spec.family] = name
    return [best[family] for family in sorted(best)]


def _entry(name: str) -> _Entry:
    _load_families()
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else "run 'mobexport list' to see the zoo"
        raise UnknownModelError(f"unknown model '{name}'", hint) from None


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of a registered variant."""
    return _entry(name).spec


def create_model(
    name: str,
    checkpoint: str | Path | None = None,
    num_classes: int | None = None,
    resolution: int | None = None,
    **overrides,
) -> nn.Module:
    """Build a variant in eval mode, optionally loading a checkpoint.

    ``resolution`` is passed to families whose parameters depend on it
    (position tables); the others ignore it. A checkpoint made for another
    resolution or class count is adapted by :func:`load_checkpoint`.
    """
    entry = _entry(name)
    spec = entry.spec
    if resolution is not None:
        spec.check_resolution(resolution)
        overrides["resolution"] = resolution
    model = entry.factory(num_classes=spec.num_classes if num_classes is None else num_classes, **overrides)
    model.eval()
    if checkpoint is not None:
        from .checkpoint import load_checkpoint

        load_checkpoint(model, checkpoint, model_name=name)
    return model
