"""The artifact a case measures: exported with the pipeline, or reused if already there.

A phone deployment ships one static input shape, so a sweep exports each
(model, target, resolution) separately, static, into
``OUT/artifacts/r<RES>[-<quant>][-passes-<list>]/<model>/<target>/``. An
artifact already there is reused when its manifest says it is the same
export (model, target, static resolution, passes, quantization, mobexport
version: compared through the recorded command) and its sha256 still matches.

An artifact not in ``--out`` is taken from the machine-wide export cache
(:mod:`mobexport.benchmarks.sweep.export_cache`) when an identical export is there,
and every fresh export is stored in it, so a sweep into a new ``--out`` (each CI
run) does not export again what an earlier run already exported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mobexport import __version__
from mobexport.config import ExportConfig, label_of
from mobexport.devices.device import EAGER
from mobexport.errors import MobexportError
from mobexport.export.artifact import Artifact
from mobexport.export.targets import option_classes
from mobexport.export.targets.options import default_options
from mobexport.manifest import MANIFEST_NAME, Manifest
from mobexport.shapes import Resolution

from mobexport.benchmarks.results.records import CaseKey

# What ``mobexport`` itself defaults the target options to: read from each target's options dataclass.
DEFAULT_TARGET_OPTIONS = default_options(option_classes())


@dataclass
class Prepared:
    """A case ready to time: its artifact (none for eager PyTorch) and its costs."""

    case: CaseKey
    artifact: Artifact | None
    macs: int | None
    params: int | None
    reused: bool = False

    def artifact_facts(self) -> dict:
        if self.artifact is None:
            return {}
        m = self.artifact.manifest
        return {"path": str(self.artifact.path), "size_bytes": m.artifact.get("size_bytes"),
                "sha256": m.artifact.get("sha256"), "manifest": str(self.artifact.directory / MANIFEST_NAME)}


def variant_dir(out_dir: Path, case: CaseKey) -> Path:
    name = f"r{case.resolution}"
    if case.quantization != "none":
        name += f"-{case.quantization}"
    if case.passes != "default":
        name += "-passes-" + re.sub(r"[^A-Za-z0-9_.]+", "_", case.passes)
    return Path(out_dir) / "artifacts" / name


def export_command(case: CaseKey) -> list[str]:
    return ["mobexport", "--model", case.model, "--target", case.target, "--resolution", str(case.resolution),
            "--static", "--passes", case.passes, "--quantize", case.quantization]


def export_config(case: CaseKey, out_dir: Path) -> ExportConfig:
    return ExportConfig(model=case.model, target=case.target, resolution=case.resolution,
                        out_dir=variant_dir(out_dir, case), dynamic=False, passes=case.passes,
                        quantize=case.quantization, target_options=dict(DEFAULT_TARGET_OPTIONS),
                        command=export_command(case))


def same_export(case: CaseKey, artifact: Artifact) -> bool:
    """Whether ``artifact``'s manifest says it is the export ``case`` asks for."""
    m = artifact.manifest
    return (m.target == case.target and m.model.get("name") == label_of(case.model)
            and (m.resolution.get("size") or m.resolution.get("export")) == case.resolution
            and not m.resolution.get("dynamic")
            and list(m.command) == export_command(case) and m.mobexport_version == __version__)


def reusable(case: CaseKey, out_dir: Path) -> Artifact | None:
    """The artifact already exported for ``case``, if it is intact and the same export."""
    directory = export_config(case, out_dir).artifact_dir()
    if not (directory / MANIFEST_NAME).is_file():
        return None
    try:
        artifact = Artifact.open(directory)
    except MobexportError:
        return None
    if not same_export(case, artifact) or not artifact.path.exists() or not artifact.verify_hash():
        return None
    return artifact


def costs_from(manifest: Manifest) -> tuple[int | None, int | None]:
    return manifest.macs.get("total_macs"), manifest.params or None


_FROM_ENVIRONMENT = object()


def prepare(case: CaseKey, out_dir: Path, on_step: Callable[[str], None] | None = None,
            cache_dir: Path | None | object = _FROM_ENVIRONMENT) -> Prepared:
    """Export (or reuse) the artifact of ``case``; eager PyTorch needs only its MACs.

    Reuse order: the artifact already in ``out_dir``, then the export cache
    (``cache_dir``; by default from ``$MOBEXPORT_CACHE_DIR`` or ``~/.cache``;
    None turns it off), then a fresh export, which is stored in the cache.
    """
    if case.target == EAGER:
        macs, params = eager_costs(case, out_dir)
        return Prepared(case, None, macs, params)
    found = reusable(case, out_dir)
    if found is not None:
        return Prepared(case, found, *costs_from(found.manifest), reused=True)
    from .export_cache import ExportCache, default_cache_dir

    root = default_cache_dir() if cache_dir is _FROM_ENVIRONMENT else cache_dir
    cache = ExportCache(root) if root is not None else None
    config = export_config(case, out_dir)
    if cache is not None:
        cached = cache.restore(config, config.artifact_dir(), lambda artifact: same_export(case, artifact))
        if cached is not None:
            return Prepared(case, cached, *costs_from(cached.manifest), reused=True)
    from mobexport.export.pipeline import export_model

    artifact = export_model(config, on_step=on_step)
    if cache is not None:
        cache.store(config, artifact)
    return Prepared(case, artifact, *costs_from(artifact.manifest))


def eager_costs(case: CaseKey, out_dir: Path) -> tuple[int | None, int | None]:
    """MACs/params at the case's resolution: from any artifact of the same model and size, else traced."""
    plain = Path(out_dir) / "artifacts" / f"r{case.resolution}"  # float, default passes: the same graph
    for manifest_path in sorted(plain.glob(f"{case.model}/*/{MANIFEST_NAME}")):
        try:
            return costs_from(Manifest.read(manifest_path))
        except MobexportError:
            continue
    from mobexport.export.macs import count_macs
    from mobexport.export.trace import trace
    from mobexport.models import create_model, get_spec

    size = Resolution.of(case.resolution)
    model = create_model(case.model, resolution=size.height).eval()
    report = count_macs(trace(model, get_spec(case.model), size).program, size)
    return report.total_macs, report.params
