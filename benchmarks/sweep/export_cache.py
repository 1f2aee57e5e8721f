"""A cache of exported artifacts shared by every ``mobexport bench`` run on this machine.

A sweep into a fresh ``--out`` (CI does that every run) used to re-export
every case, minutes each, though nothing that decides the export had changed.
An export is a pure function of what goes into it, so it is stored under a key
made of all of that:

* the case: model, target, static resolution, passes, quantization;
* the export options (target options, parity samples...), as ExportConfig holds them;
* the checkpoint's sha256 (or "random-init");
* the model's source when it is not a zoo model: the sha256 of the ``file.py``
  or ``.pt2`` the model reference names, or of the module of a ``pkg.mod:factory``
  (zoo models are covered by the source fingerprint below);
* mobexport's version and a fingerprint of its source files (an edited pass
  under an unchanged version number must not serve a stale artifact);
* the versions of the packages that export (torch, onnx, onnxruntime,
  onnxscript, executorch, coremltools, numpy) and of Python.

An entry is the artifact directory as the pipeline wrote it. Before an entry is
reused its artifact file's sha256 is checked against its manifest, and the
manifest against the case; an entry that fails is deleted and the case is
exported again. Entries are written to a temporary directory and renamed into
place, so a reader sees a whole entry or none. The cache is an optimisation
only: a cache that cannot be read or written is logged and skipped, never an
error.

Where: ``$MOBEXPORT_CACHE_DIR`` if set (``off`` disables the cache), else
``$XDG_CACHE_HOME/mobexport/artifacts``, else ``~/.cache/mobexport/artifacts``.
Delete that directory to clear it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

from mobexport import __version__
from mobexport.config import ExportConfig
from mobexport.errors import MobexportError
from mobexport.export.artifact import Artifact
from mobexport.manifest import MANIFEST_NAME, sha256_tree

CACHE_ENV = "MOBEXPORT_CACHE_DIR"
DISABLED = ("off", "none", "0", "no", "false")
EXPORT_PACKAGES = ("torch", "numpy", "onnx", "onnxruntime", "onnxscript", "executorch", "coremltools",
                   "litert-torch", "ai-edge-litert", "ai-edge-quantizer")
log = logging.getLogger(__name__)


def default_cache_dir() -> Path | None:
    """The cache directory this process uses, or None when ``$MOBEXPORT_CACHE_DIR`` turns it off."""
    configured = os.environ.get(CACHE_ENV)
    if configured is not None:
        return None if configured.strip().lower() in DISABLED or not configured.strip() else Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mobexport" / "artifacts"


@functools.lru_cache(maxsize=1)
def source_fingerprint() -> str:
    """sha256 over mobexport's own Python source (every package it installs), path and content."""
    import mobexport.export
    import mobexport.kernels
    import mobexport.models

    digest = hashlib.sha256()
    roots = sorted({Path(m.__file__).parent for m in (sys.modules["mobexport"], mobexport.models, mobexport.export,
                                                     mobexport.kernels)})
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            digest.update(f"{root.name}/{path.relative_to(root)}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in EXPORT_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def checkpoint_hash(config: ExportConfig) -> str:
    return "random-init" if config.checkpoint is None else sha256_tree(Path(config.checkpoint))


def model_source_hash(model: str) -> str:
    """sha256 of the file a model reference is defined in; "zoo" for a zoo name (see the source fingerprint).

    ``file.py:factory`` and ``x.pt2`` name files; ``pkg.mod:factory`` a module, found without importing it.
    A reference whose file cannot be found hashes as its text: the export itself will report it.
    """
    location, sep, _ = model.partition(":")
    candidate = Path(location if sep else model)
    if candidate.suffix in (".py", ".pt2") and candidate.is_file():
        return sha256_tree(candidate)
    if sep and candidate.suffix != ".py":
        import importlib.util

        try:
            spec = importlib.util.find_spec(location)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.origin and Path(spec.origin).is_file():
            return sha256_tree(Path(spec.origin))
        return f"unresolved:{model}"
    return "zoo"


def cacheable(config: ExportConfig) -> bool:
    """Whether everything that decides ``config``'s export is in its key (calibration images are not)."""
    return config.calib_dir is None


def cache_key(config: ExportConfig) -> str:
    """The hex key of ``config``'s export: equal keys give the same artifact."""
    options = asdict(config)
    for volatile in ("out_dir", "checkpoint", "command"):  # where it goes, not what it is; hashed below
        options.pop(volatile, None)
    facts = {
        "options": options,
        "checkpoint_sha256": checkpoint_hash(config),
        "model_source": model_source_hash(config.model),
        "mobexport_version": __version__,
        "mobexport_source": source_fingerprint(),
        "packages": package_versions(),
    }
    text = json.dumps(facts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class ExportCache:
    """Artifacts under ``root/<key[:2]>/<key>/``, checked before reuse."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def entry(self, key: str) -> Path:
        return self.root / key[:2] / key

    def restore(self, config: ExportConfig, destination: Path, matches) -> Artifact | None:
        """Copy the cached export of ``config`` to ``destination`` (absent) and return it, or None.

        ``matches(artifact)`` says whether a manifest is the export the caller
        wants; an entry that fails it or its sha256 is removed.
        """
        if not cacheable(config):
            return None
        try:
            key = cache_key(config)
        except OSError as exc:  # an unreadable checkpoint: the export itself will report it
            log.debug("export cache: no key for %s (%s)", config.model, exc)
            return None
        entry = self.entry(key)
        if not (entry / MANIFEST_NAME).is_file() or destination.exists():
            return None
        try:
            cached = Artifact.open(entry)
            if not (matches(cached) and cached.path.exists() and cached.verify_hash()):
                log.warning("export cache: entry %s does not match its manifest; removing it", entry)
                shutil.rmtree(entry, ignore_errors=True)
                return None
            _copy_into_place(entry, destination)
            restored = Artifact.open(destination)
            if not restored.verify_hash():  # the copy itself went wrong (disk full...)
                shutil.rmtree(destination, ignore_errors=True)
                return None
        except (MobexportError, OSError) as exc:
            log.warning("export cache: cannot reuse %s (%s); exporting instead", entry, exc)
            return None
        log.info("export cache: reused %s/%s@%d from %s", config.model, config.target, config.resolution, entry)
        return restored

    def store(self, config: ExportConfig, artifact: Artifact) -> Path | None:
        """Keep a copy of a fresh export; returns the entry, or None when the cache cannot take it."""
        if not cacheable(config):
            return None
        try:
            entry = self.entry(cache_key(config))
            if entry.exists():
                return entry
            _copy_into_place(artifact.directory, entry)
        except OSError as exc:
            log.warning("export cache: cannot store %s in %s (%s)", artifact.directory, self.root, exc)
            return None
        return entry


def _copy_into_place(source: Path, destination: Path) -> None:
    """Copy a directory so that ``destination`` appears whole or not at all."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name[:16]}.", dir=destination.parent))
    try:
        copy = staging / "entry"
        shutil.copytree(source, copy, symlinks=True)
        try:
            os.rename(copy, destination)
        except OSError:
            if not destination.exists():  # not a lost race with another writer of the same entry
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
