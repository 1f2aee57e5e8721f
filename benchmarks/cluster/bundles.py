"""An artifact directory as one bytes object, for Ray's object store, checked by sha256 where unpacked.

The bundle is an uncompressed tar of the directory the pipeline wrote
(artifact file + manifest). Unpacking goes through a staging directory and a
rename, and the result must match both its own manifest's sha256 and the
sha256 the exporting node reported: a measuring node never times a damaged or
different artifact.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from mobexport.errors import MobexportError
from mobexport.export.artifact import Artifact


class BundleError(MobexportError):
    """An artifact bundle that does not unpack to the artifact it names."""


def pack(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(Path(directory).rglob("*")):
            if path.is_file() and not path.is_symlink():
                tar.add(path, arcname=str(path.relative_to(directory)), recursive=False)
    return buffer.getvalue()


def artifact_sha256(artifact: Artifact) -> str | None:
    return artifact.manifest.artifact.get("sha256")


def unpack(bundle: bytes, destination: Path, sha256: str | None) -> Artifact:
    """Unpack into ``destination`` (replaced if there), verify, and open it."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name[:16]}.", dir=destination.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(bundle), mode="r") as tar:
            tar.extractall(staging, filter="data")
        artifact = Artifact.open(staging)
        if not artifact.verify_hash() or (sha256 is not None and artifact_sha256(artifact) != sha256):
            raise BundleError(f"the artifact bundle for {destination} does not match its sha256",
                              "run the sweep again; the export is redone")
        if destination.exists():
            shutil.rmtree(destination)
        os.rename(staging, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Artifact.open(destination)
