"""The passes ``--passes`` can name, the default pipeline, and old names kept working.

The list is explicit: :data:`PASSES` maps each id to the module and class
that implement it (ids equal module names: ``fold_dynamic_relu.py`` holds
``FoldDynamicReluPass``). Reading it imports neither torch nor a pass, so the
CLI's help can list the ids cheaply; :func:`resolve` imports the passes it
returns. ``resolve("default" | "none" | "a,b")`` turns the CLI's ``--passes``
into an ordered list, honouring each pass's ``after`` constraints.
"""

from __future__ import annotations

import difflib
import importlib
from typing import TYPE_CHECKING

from mobexport.errors import UnknownPassError

if TYPE_CHECKING:
    from .base import GraphPass

PASSES = {
    "einsum_to_matmul": "EinsumToMatmulPass",
    "sdpa_to_matmul": "SdpaToMatmulPass",
    "fold_batchnorm": "FoldBatchnormPass",
    "fuse_dwconv_ffn": "FuseDwconvFfnPass",
    "split_depthwise_multiplier": "SplitDepthwiseMultiplierPass",
    "cancel_interleave_shuffle": "CancelInterleaveShufflePass",
    "fold_dynamic_relu": "FoldDynamicReluPass",
    "sink_channel_interleave": "SinkChannelInterleavePass",
    "attention_to_bmm": "AttentionToBmmPass",
    "fold_constants": "FoldConstantsPass",
}

# The default pipeline, in order.
DEFAULT_PIPELINE = (
    "einsum_to_matmul",
    "sdpa_to_matmul",
    "fold_batchnorm",
    "fuse_dwconv_ffn",
    "split_depthwise_multiplier",
    "cancel_interleave_shuffle",
    "fold_dynamic_relu",
    "sink_channel_interleave",
    "attention_to_bmm",
    "fold_constants",
)

# Names a pass had before; ``--passes`` and saved suites that use them keep working.
ALIASES = {"projection_free_attention": "attention_to_bmm"}

_PASSES: dict[str, type[GraphPass]] = {}


def pass_ids() -> list[str]:
    """Every built-in pass id, sorted, without importing anything heavy."""
    return sorted(PASSES)


def register_pass(cls: type[GraphPass]) -> type[GraphPass]:
    """Add a pass class under its ``id`` (the built-in ones are added from :data:`PASSES`)."""
    if cls.id in _PASSES:
        raise ValueError(f"pass {cls.id!r} registered twice")
    _PASSES[cls.id] = cls
    return cls


def _load() -> None:
    for pass_id, class_name in PASSES.items():
        if pass_id not in _PASSES:
            cls = getattr(importlib.import_module(f"{__package__}.{pass_id}"), class_name)
            assert cls.id == pass_id, f"{class_name}.id is {cls.id!r}, registered as {pass_id!r}"
            register_pass(cls)


def available_passes() -> list[str]:
    _load()
    return sorted(_PASSES)


def default_pipeline() -> list[str]:
    _load()
    return list(DEFAULT_PIPELINE)


def resolve(spec: str, skip_in_default: tuple[str, ...] = ()) -> list[GraphPass]:
    """Ordered pass instances for ``default``, ``none`` or a comma-separated list of ids (or old names).

    ``skip_in_default`` leaves passes out of ``default`` only (a target's
    :attr:`~mobexport.export.targets.base.Target.slower_passes`); a list that names one still runs it.
    """
    _load()
    spec = spec.strip()
    if spec == "none":
        return []
    if spec == "default":
        ids = [pass_id for pass_id in default_pipeline() if pass_id not in skip_in_default]
    else:
        ids = [s.strip() for s in spec.split(",") if s.strip()]
    ids = [ALIASES.get(pass_id, pass_id) for pass_id in ids]
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
