"""The fixture checkpoint format: ``{"state_dict": ..., "meta": {...}}``, written by ``mobexport train-fixture``.

It lives beside the dataset the fixtures are trained on so that the compiler
(the quantization accuracy report) can recognise a fixture and find its
held-out split without importing the training code in ``benchmarks``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mobexport.errors import CheckpointError

FIXTURE_KIND = "mobexport-fixture"  # meta["kind"] of a trained fixture


def read_fixture_meta(path: str | Path) -> dict:
    """The ``meta`` dict of a fixture checkpoint (loaded with ``weights_only=True``)."""
    try:
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"fixture '{path}' is unreadable ({type(exc).__name__})",
                              "delete it or re-train with --force") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("meta"), dict):
        raise CheckpointError(f"'{path}' is not a mobexport fixture (no meta)", "re-train with --force")
    return payload["meta"]
