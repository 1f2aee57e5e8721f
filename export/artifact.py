"""An artifact on disk: its directory, main file and manifest.

Artifacts are assembled in a hidden staging directory beside their final
place and renamed into it only when complete (file written, checked, parity
measured, manifest written): an interrupted or failed export leaves nothing
that looks whole.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from mobexport.errors import OutputDirError
from mobexport.manifest import MANIFEST_NAME, Manifest, current_umask, sha256_tree


@dataclass
class Artifact:
    directory: Path
    manifest: Manifest

    @property
    def path(self) -> Path:
        return self.directory / self.manifest.artifact["file"]

    @classmethod
    def open(cls, path: Path) -> "Artifact":
        """An artifact from its directory, its manifest or its main file."""
        path = Path(path)
        directory = path if path.is_dir() else path.parent
        return cls(directory, Manifest.read(directory / MANIFEST_NAME))

    def verify_hash(self) -> bool:
        return sha256_tree(self.path) == self.manifest.artifact.get("sha256")


@contextlib.contextmanager
def staging_directory(final: Path) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``final`` on success only."""
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.partial-"))
    except OSError as exc:
        raise OutputDirError(
            f"cannot write to '{final.parent}' ({exc.strerror or exc})", "choose another directory with --out"
        ) from None
    try:
        yield staging
        # mkdtemp makes the directory private (0700); a finished artifact gets the usual umask mode.
        os.chmod(staging, 0o777 & ~current_umask())
        previous = None
        if final.exists():
            previous = final.with_name(f".{final.name}.old-{os.getpid()}")
            os.replace(final, previous)
        os.replace(staging, final)
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
