"""The manifest written beside every artifact.

Everything downstream (``inspect``, the device harness, regression tracking)
reads the manifest instead of re-deriving facts from the artifact. The schema
is versioned; a reader refuses a manifest of a newer major version.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from mobexport import __version__
from mobexport.errors import MobexportError

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
TRACKED_TOOLS = ("torch", "numpy", "onnx", "onnxruntime", "onnxscript", "executorch", "coremltools", "tensorrt",
                 "litert-torch", "ai-edge-litert")


class ManifestError(MobexportError):
    """A manifest is missing, malformed, or of an unknown schema."""


@dataclass
class Manifest:
    model: dict
    target: str
    artifact: dict
    resolution: dict
    checkpoint: dict = field(default_factory=lambda: {"sha256": "random-init"})
    passes: list[dict] = field(default_factory=list)
    quantization: dict = field(default_factory=lambda: {"mode": "none"})
    parity: list[dict] = field(default_factory=list)
    tolerance: dict = field(default_factory=dict)
    macs: dict = field(default_factory=dict)
    params: int = 0
    timings_s: dict = field(default_factory=dict)
    target_details: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    command: list[str] = field(default_factory=list)
    tool_versions: dict = field(default_factory=lambda: tool_versions())
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    mobexport_version: str = __version__
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False, default=_jsonable)

    def write(self, directory: Path) -> Path:
        """Write ``manifest.json`` into ``directory`` atomically."""
        return write_text_atomic(Path(directory) / MANIFEST_NAME, self.to_json() + "\n")

    @classmethod
    def from_dict(cls, data: dict, source: str = "manifest") -> "Manifest":
        version = data.get("schema_version")
        if not isinstance(version, int):
            raise ManifestError(f"{source} has no schema_version", "was it written by mobexport?")
        if version > SCHEMA_VERSION:
            raise ManifestError(
                f"{source} has schema version {version}; this mobexport reads up to {SCHEMA_VERSION}",
                "upgrade mobexport",
            )
        known = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
        missing = sorted(required - set(data))
        if missing:
            raise ManifestError(f"{source} lacks {', '.join(missing)}", "re-export the artifact")
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def read(cls, path: Path) -> "Manifest":
        path = Path(path)
        if path.is_dir():
            path = path / MANIFEST_NAME
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ManifestError(f"no manifest at '{path}'", "point at an artifact directory or its manifest.json") from None
        except json.JSONDecodeError as exc:
            raise ManifestError(f"'{path}' is not valid JSON ({exc.msg} at line {exc.lineno})", "re-export it") from None
        return cls.from_dict(data, source=str(path))



def _jsonable(value):
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, float):
        return value
    return str(value)


def tool_versions() -> dict:
    versions = {"python": platform.python_version(), "platform": platform.platform(), "mobexport": __version__}
    for name in TRACKED_TOOLS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(path: Path) -> str:
    """sha256 of a file, or of a directory's files (names and contents, sorted)."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode())
        digest.update(sha256_file(file).encode())
    return digest.hexdigest()


def size_of(path: Path) -> int:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def current_umask() -> int:
    """The process umask (read by setting and restoring it: there is no getter)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: Path, text: str) -> Path:
    """Write via a temporary file in the same directory and rename into place."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        # mkstemp creates the file 0600; the written file gets the usual umask mode.
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
