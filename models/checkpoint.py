"""Loading trained weights in the reference releases' key format.

Accepts ``.pth``/``.pt``/``.bin`` (torch pickles) and ``.safetensors``, plain or
nested under ``state_dict``/``model``/``state_dict_ema``/``model_ema``, with
or without the ``module.`` prefix of DataParallel/DDP or ``_orig_mod.`` of
``torch.compile``. Two deliberate adaptations, both reported:

* a classifier whose class count differs from the model's is left fresh;
* a model with resolution-dependent tables (position embeddings, relative
  position biases) resizes them through its ``adapt_state_dict`` hook.
"""

from __future__ import annotations

import logging
import pickle
import pickletools
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from mobexport.errors import CheckpointError
from mobexport.manifest import sha256_file

log = logging.getLogger(__name__)

NESTING_KEYS = ("state_dict", "model", "state_dict_ema", "model_ema", "net")
PREFIXES = ("module.", "_orig_mod.")
SHOW_AT_MOST = 5


@dataclass
class LoadReport:
    path: str
    sha256: str
    notes: list[str] = field(default_factory=list)
    fresh_keys: list[str] = field(default_factory=list)


def read_state_dict(path: str | Path, trust: bool = False) -> dict[str, torch.Tensor]:
    """Read a checkpoint file and return its flat, unprefixed state dict."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist", "check the path given to --checkpoint")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            raw = load_file(str(path))
        else:
            raw = torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as exc:
        # weights_only refuses both a pickle of other objects and bytes that are no pickle at all;
        # only the first may be loaded with --trust-checkpoint, so only the first gets that advice.
        if trust or not is_wellformed_pickle(path):
            raise CheckpointError(f"checkpoint '{path}' is not a PyTorch checkpoint (no readable pickle in it)",
                                  "is the file complete and a .pth/.pt/.safetensors?") from exc
        raise CheckpointError(
            f"checkpoint '{path}' holds Python objects besides tensors",
            "pass --trust-checkpoint if you trust its source, or re-save it with torch.save(model.state_dict())",
        ) from exc
    except Exception as exc:  # corrupt zip, truncated file, wrong format
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"checkpoint '{path}' is unreadable ({first})", "is the file complete and a .pth/.pt/.safetensors?"
        ) from exc
    return _flatten(raw, path)


LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # the first pickle of torch.save's pre-zip format


def is_wellformed_pickle(path: Path) -> bool:
    """Whether ``path`` is a torch checkpoint whose pickle is complete: a torch zip's ``data.pkl``, or
    the legacy format (magic number, protocol, system info, data: four pickles in a row).

    Parsed with :func:`pickletools.genops`, which reads opcodes without executing
    any: safe on untrusted files. Random bytes fail (a lone STOP byte is not enough).
    """
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                member = next((n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
                if member is None:
                    return False
                with archive.open(member) as stream:
                    return _parses(stream) is not None
        with open(path, "rb") as stream:
            first = _parses(stream)
            if first is None or LEGACY_MAGIC not in first:
                return False
            return all(_parses(stream) is not None for _ in range(3))
    except (OSError, zipfile.BadZipFile, RuntimeError):
        return False


def _parses(stream) -> list | None:
    """The arguments of one complete pickle's opcodes read from ``stream``, or None if it is no pickle."""
    try:
        args, last = [], None
        for last, arg, _ in pickletools.genops(stream):
            args.append(arg)
            if last.name == "STOP":
                return args
        return None
    except Exception:  # genops raises ValueError, EOFError, UnicodeDecodeError... on bytes that are no pickle
        return None


def check_finite(state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Refuse a checkpoint with NaN or Inf weights, naming the tensors (they would only show up as a parity failure)."""
    bad = []
    for key, tensor in state.items():
        if not (tensor.is_floating_point() or tensor.is_complex()) or tensor.is_meta:
            continue
        finite = torch.isfinite(tensor)
        if not bool(finite.all()):
            nan = int(torch.isnan(tensor).sum())
            bad.append(f"{key} ({nan} NaN, {int((~finite).sum()) - nan} Inf)")
    if bad:
        shown = ", ".join(bad[:SHOW_AT_MOST])
        if len(bad) > SHOW_AT_MOST:
            shown += f", ... ({len(bad)} tensors in all)"
        raise CheckpointError(f"checkpoint '{path}' has NaN or Inf weights: {shown}",
                              "the training run diverged or the file is damaged; use an earlier checkpoint")


def _flatten(raw: object, path: Path) -> dict[str, torch.Tensor]:
    state = raw
    if isinstance(state, nn.Module):
        state = state.state_dict()
    while isinstance(state, dict) and not _is_state_dict(state):
        inner = next((k for k in NESTING_KEYS if isinstance(state.get(k), (dict, nn.Module))), None)
        if inner is None:
            raise CheckpointError(
                f"checkpoint '{path}' has no state dict (top-level keys: {', '.join(map(str, list(state)[:8]))})",
                f"expected tensors, or one of {', '.join(NESTING_KEYS)}",
            )
        state = state[inner]
        if isinstance(state, nn.Module):
            state = state.state_dict()
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"checkpoint '{path}' holds no tensors", "is this a model checkpoint?")
    return {_strip(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def _is_state_dict(d: dict) -> bool:
    return bool(d) and all(isinstance(v, torch.Tensor) for v in d.values())


def _strip(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix) :], True
    return key


def load_checkpoint(
    model: nn.Module, path: str | Path, model_name: str = "model", trust: bool = False
) -> LoadReport:
    """Load ``path`` into ``model`` strictly, except for the adaptations above."""
    state = read_state_dict(path, trust=trust)
    check_finite(state, path)
    report = LoadReport(path=str(path), sha256=sha256_file(path))
    adapt = getattr(model, "adapt_state_dict", None)
    if callable(adapt):
        state, notes = adapt(state)
        report.notes.extend(notes)

    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [k for k in expected if k in state and state[k].shape != expected[k].shape]

    head = getattr(model, "classifier_prefix", None)
    head_mismatch = [k for k in mismatched if head and k.startswith(head)]
    if head_mismatch and len(head_mismatch) == len(mismatched):
        for k in head_mismatch:
            state[k] = expected[k]
        report.fresh_keys = head_mismatch
        report.notes.append(
            f"classifier '{head}' left fresh: the checkpoint's head does not match "
            f"num_classes={_num_classes(model, head)}"
        )
        mismatched = []

    if missing or unexpected or mismatched:
        raise CheckpointError(_mismatch_message(path, model_name, missing, unexpected, mismatched, state, expected),
                              "is it a checkpoint of this variant, in the reference release's key format?")
    model.load_state_dict(state, strict=True)
    for note in report.notes:
        log.warning(note)
    return report


def _num_classes(model: nn.Module, head: str) -> int | str:
    weight = model.state_dict().get(f"{head}.weight")
    return int(weight.shape[0]) if weight is not None else "?"


def _mismatch_message(path, name, missing, unexpected, mismatched, state, expected) -> str:
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:SHOW_AT_MOST])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:SHOW_AT_MOST])})")
    if mismatched:
        shown = ", ".join(
            f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}" for k in mismatched[:SHOW_AT_MOST]
        )
        parts.append(f"{len(mismatched)} with other shapes (e.g. {shown})")
    return f"checkpoint '{path}' does not fit {name}: keys " + "; ".join(parts)
