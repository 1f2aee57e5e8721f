"""Which variant of a model's export an artifact is, and refusing to replace another one silently.

``OUT/MODEL/TARGET`` holds one artifact. Re-exporting the same variant there
replaces it (that is an update); an export with another resolution, shape mode,
quantization, pass list, class count or target option would silently replace a
different artifact, so it is refused unless ``force`` is given.
"""

from __future__ import annotations

import logging

from mobexport.config import ExportConfig
from mobexport.errors import OutputDirError
from mobexport.manifest import MANIFEST_NAME, Manifest, ManifestError

log = logging.getLogger(__name__)


def variant_of(config: ExportConfig, resolution: int, dynamic: bool, num_classes: int) -> dict:
    """The options that make one export of a model and target differ from another, as JSON values."""
    return {
        "resolution": resolution,
        "dynamic": dynamic,
        "quantize": config.quantize,
        "passes": config.passes,
        "num_classes": num_classes,
        "target_options": {k: (None if v is None else str(v) if not isinstance(v, (bool, int, float)) else v)
                           for k, v in sorted(config.target_options.items())},
    }


def recorded_variant(manifest: Manifest) -> dict:
    """The variant a manifest records; older manifests without one give what they do record."""
    if manifest.variant:
        return manifest.variant
    return {"resolution": manifest.resolution.get("export"), "dynamic": manifest.resolution.get("dynamic"),
            "quantize": manifest.quantization.get("mode", "none")}


def differences(existing: dict, wanted: dict) -> list[str]:
    """What differs, as "name X there, Y here", over the keys both record."""
    out = []
    for key in wanted:
        if key not in existing:
            continue
        if key == "target_options" and isinstance(existing[key], dict):
            out += [f"{k} {existing[key].get(k)!r} there, {v!r} here" for k, v in wanted[key].items()
                    if k in existing[key] and existing[key][k] != v]
        elif existing[key] != wanted[key]:
            out.append(f"{key} {existing[key]!r} there, {wanted[key]!r} here")
    return out


def check_replaceable(config: ExportConfig, wanted: dict) -> None:
    """Refuse to replace another variant at ``config.artifact_dir()`` unless ``config.force``."""
    directory = config.artifact_dir()
    if config.force or not (directory / MANIFEST_NAME).is_file():
        return
    try:
        existing = recorded_variant(Manifest.read(directory / MANIFEST_NAME))
    except ManifestError as exc:
        # A damaged artifact is replaced (the files a user added to it are kept): there is no variant to protect.
        log.warning("replacing the artifact in '%s': its manifest is unreadable (%s)", directory, exc.message)
        return
    changed = differences(existing, wanted)
    if changed:
        raise OutputDirError(f"'{directory}' holds another export of {config.model} -> {config.target} "
                             f"({'; '.join(changed)})",
                             "choose another --out, or pass --force to replace it")
