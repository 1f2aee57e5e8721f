"""Which ``--quantize`` modes each target supports, and how: read from the targets' own quantizer tables.

Each target declares its quantizers in ``export/targets/<id>/quantizers.py``
(mode, stage, ``how``). ``check_supported`` turns an unsupported (target,
mode) pair into a one-line :class:`QuantizationError` that names what the
target does support, before any work is done. Importing this imports no torch.
"""

from __future__ import annotations

from mobexport.errors import QuantizationError

MODES = ("none", "fp16", "int8", "int8-weights")

# The parity tolerance a mode implies (keys of parity.TOLERANCES).
PRECISION = {"fp16": "fp16", "int8": "int8", "int8-weights": "int8"}


def _quantizers(target: str) -> dict:
    from mobexport.export import targets

    return targets.quantizers_of(target) if target in targets.TARGETS else {}


def support_table() -> dict[str, dict[str, str]]:
    """target -> mode -> how it is done (shown in docs and the manifest)."""
    from mobexport.export import targets

    return {name: {mode: q.how for mode, q in _quantizers(name).items()} for name in targets.target_names()}


def supported_modes(target: str) -> list[str]:
    """Modes ``target`` accepts, ``none`` first."""
    return ["none", *_quantizers(target)]


def check_supported(target: str, mode: str) -> None:
    """Raise :class:`QuantizationError` unless ``target`` can do ``mode``."""
    if mode not in MODES:
        raise QuantizationError(f"unknown quantization '{mode}'", f"use --quantize {' | '.join(MODES)}")
    if mode != "none" and mode not in _quantizers(target):
        raise QuantizationError(f"--quantize {mode} is not supported for --target {target}",
                                f"{target} supports: {', '.join(supported_modes(target))}")


def precision_of(mode: str) -> str | None:
    """The parity tolerance name a quantized artifact is held to, ``None`` for ``none``."""
    return PRECISION.get(mode)


def describe(target: str, mode: str) -> str:
    return "no quantization" if mode == "none" else _quantizers(target)[mode].how
