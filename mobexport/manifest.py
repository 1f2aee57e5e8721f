"""The manifest written beside every artifact.

Everything downstream (``inspect``, the device harness, regression tracking)
reads the manifest instead of re-deriving facts from the artifact. The schema
is versioned; a reader refuses a manifest of a newer major version.

A manifest is a file users copy between machines and commit to repositories,
so it is read as untrusted input: only a regular file of bounded size, UTF-8,
validated against one JSON Schema (:data:`MANIFEST_SCHEMA`) before any field
is used. Every problem becomes one :class:`ManifestError` line naming the field.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import stat
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from mobexport import __version__
from mobexport.errors import MobexportError

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
TRACKED_TOOLS = ("torch", "numpy", "onnx", "onnxruntime", "onnxscript", "executorch", "coremltools", "tensorrt",
                 "litert-torch", "ai-edge-litert")


MAX_MANIFEST_BYTES = 16 << 20  # a real manifest is a few hundred KiB at most
MAX_NESTING = 32  # a real manifest nests 6 levels; printers and re-serialisation recurse per level
PARAMS_DEFINITION = "PyTorch model parameters before graph rewrites, sum of numel() over model.parameters()"
RANDOM_WEIGHTS_NOTE = "random weights: latency and size are real, accuracy is not"


class ManifestError(MobexportError):
    """A manifest is missing, malformed, or of an unknown schema."""

    def __init__(self, message: str, hint: str | None = None):
        # Field values and paths come from untrusted files: keep the error on one line.
        super().__init__(one_line(message), hint)


def one_line(text: str, limit: int = 300) -> str:
    """``text`` with control characters made visible and cut to ``limit`` characters."""
    text = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(text))
    return text if len(text) <= limit else text[: limit - 1] + "…"


_STRING_LIST = {"type": "array", "items": {"type": "string"}}
_OPTIONAL_INT = {"type": ["integer", "null"]}
_NUMBER = {"type": "number"}

# The one description of a valid manifest. Fields the dataclass defaults may be
# absent; every field present must have the type the readers rely on.
MANIFEST_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["model", "target", "artifact", "resolution", "schema_version"],
    "properties": {
        "model": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "family": {"type": "string"},
                "checkpoint_format": {"type": ["string", "null"]},
                "num_classes": {"type": "integer", "minimum": 1},
                "reference_params": {"type": ["integer", "null"], "minimum": 0},
                "reference_macs": {"type": ["integer", "null"], "minimum": 0},
                "default_resolution": {"type": "integer", "minimum": 1},
                "mean": {"type": "array", "items": _NUMBER},
                "std": {"type": "array", "items": _NUMBER},
            },
        },
        "target": {"type": "string", "minLength": 1},
        "artifact": {
            "type": "object",
            "required": ["file"],
            "properties": {
                # Relative to the artifact directory; Artifact.path also checks where it resolves.
                "file": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[^/\\\x00-\x1f\x7f]+$",
                         "not": {"enum": [".", ".."]}},
                "size_bytes": {"type": "integer", "minimum": 0},
                # The artifact kind: which runtime (devices/runtimes) opens it.
                "kind": {"type": "string", "minLength": 1},
                "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            },
        },
        "resolution": {
            "type": "object",
            "required": ["export"],
            "properties": {
                "export": {"type": "integer", "minimum": 1},
                "dynamic": {"type": "boolean"},
                "min": _OPTIONAL_INT,
                "max": _OPTIONAL_INT,
                "stride": {"type": ["integer", "null"], "minimum": 1},
            },
        },
        "checkpoint": {"type": "object", "properties": {"sha256": {"type": "string"}, "path": {"type": "string"}}},
        "passes": {"type": "array", "items": {
            "type": "object", "required": ["id"],
            "properties": {"id": {"type": "string"}, "rewrites": {"type": "integer"},
                           "skipped": {"type": "array", "items": {
                               "type": "object", "required": ["site", "reason"],
                               "properties": {"site": {"type": "string"}, "reason": {"type": "string"}}}},
                           "details": {"type": "object"}}}},
        "quantization": {"type": "object", "properties": {"mode": {"type": "string"}}},
        "parity": {"type": "array", "items": {
            "type": "object",
            "required": ["resolution", "passed", "max_abs_error", "cosine", "top1_agreement", "samples", "tolerance"],
            "properties": {"resolution": {"type": "integer"}, "passed": {"type": "boolean"},
                           "max_abs_error": _NUMBER, "cosine": _NUMBER,
                           "top1_agreement": {"type": ["number", "null"]},  # null: no output is class logits
                           "samples": {"type": "integer"},
                           "tolerance": {"type": "object", "required": ["name"],
                                         "properties": {"name": {"type": "string"}}}}}},
        "tolerance": {"type": "object"},
        "macs": {"type": "object", "properties": {"total_macs": {"type": "integer", "minimum": 0},
                                                   "resolution": {"type": "integer", "minimum": 1}}},
        "params": {"type": "integer", "minimum": 0},
        "params_definition": {"type": "string"},
        "random_weights": {"type": "boolean"},
        "timings_s": {"type": "object", "additionalProperties": _NUMBER},
        "target_details": {"type": "object"},
        "variant": {"type": "object"},
        "notes": _STRING_LIST,
        "command": _STRING_LIST,
        "tool_versions": {"type": "object", "additionalProperties": {"type": "string"}},
        "created": {"type": "string"},
        "mobexport_version": {"type": "string"},
        "mobexport_revision": {"type": "string"},
        "schema_version": {"type": "integer", "minimum": 1},
    },
}


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
    params_definition: str = PARAMS_DEFINITION
    random_weights: bool = False
    timings_s: dict = field(default_factory=dict)
    target_details: dict = field(default_factory=dict)
    variant: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    command: list[str] = field(default_factory=list)
    tool_versions: dict = field(default_factory=lambda: tool_versions())
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    mobexport_version: str = __version__
    mobexport_revision: str = "unknown"
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False, default=_jsonable)

    def write(self, directory: Path) -> Path:
        """Write ``manifest.json`` into ``directory`` atomically."""
        return write_text_atomic(Path(directory) / MANIFEST_NAME, self.to_json() + "\n")

    @classmethod
    def from_dict(cls, data: object, source: str = "manifest") -> "Manifest":
        """A manifest from parsed JSON, validated against :data:`MANIFEST_SCHEMA` first."""
        version = data.get("schema_version") if isinstance(data, dict) else None
        if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
            raise ManifestError(
                f"{source} has schema version {version}; this mobexport reads up to {SCHEMA_VERSION}",
                "upgrade mobexport",
            )
        validate(data, source)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def read(cls, path: Path) -> "Manifest":
        path = Path(path)
        if path.is_dir():
            path = path / MANIFEST_NAME
        return cls.read_file(path)

    @classmethod
    def read_file(cls, path: Path) -> "Manifest":
        """The manifest in the file ``path`` (a directory there is refused, not looked into)."""
        return cls.from_dict(load_json(path, what="manifest"), source=f"'{path}'")


def validate(data: object, source: str) -> None:
    """Raise one :class:`ManifestError` line for the first schema violation, naming its field path."""
    import jsonschema

    error = jsonschema.exceptions.best_match(_validator().iter_errors(data))
    if error is None:
        return
    where = ".".join(str(part) for part in error.absolute_path) or "the top level"
    raise ManifestError(f"{source} is not a valid manifest: {where}: {error.message}",
                        "re-export the artifact; a manifest is written by mobexport, not by hand")


@functools.lru_cache(maxsize=1)
def _validator():
    import jsonschema

    return jsonschema.Draft202012Validator(MANIFEST_SCHEMA)


def load_json(path: Path, what: str, limit: int = MAX_MANIFEST_BYTES) -> object:
    """Parse the JSON file at ``path`` as untrusted input: a regular file of at most ``limit`` bytes, UTF-8.

    A FIFO, device or directory is refused without reading it (a FIFO would block
    forever); decoding, syntax and nesting-depth errors each become one line.
    """
    path = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ManifestError(f"no {what} at '{path}'", "point at an artifact directory or its manifest.json") from None
    except OSError as exc:
        raise ManifestError(f"cannot read {what} '{path}' ({exc.strerror or exc})", "check its permissions") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ManifestError(f"{what} '{path}' is not a regular file", "point at the manifest.json mobexport wrote")
        with os.fdopen(fd, "rb", closefd=False) as f:
            raw = f.read(limit + 1)
    finally:
        os.close(fd)
    if len(raw) > limit:
        raise ManifestError(f"{what} '{path}' is larger than {limit >> 20} MiB", "it is not a manifest mobexport wrote")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{what} '{path}' is not UTF-8 text (byte {exc.start})", "re-export it") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"'{path}' is not valid JSON ({exc.msg} at line {exc.lineno})", "re-export it") from None
    except RecursionError:
        raise ManifestError(f"'{path}' nests JSON too deeply", "it is not a manifest mobexport wrote") from None
    except ValueError as exc:  # e.g. an integer literal beyond Python's digit limit
        raise ManifestError(f"'{path}' is not valid JSON ({exc})", "re-export it") from None
    if nesting_depth(data) > MAX_NESTING:
        raise ManifestError(f"'{path}' nests JSON too deeply (over {MAX_NESTING} levels)",
                            "it is not a manifest mobexport wrote")
    return data


def nesting_depth(value: object) -> int:
    """How deeply ``value`` nests lists and objects, computed without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


@functools.lru_cache(maxsize=1)
def vcs_revision() -> str:
    """The version-control revision of mobexport's own checkout (``git describe``), or "unknown".

    Only a checkout whose top level holds this very package counts: an installed
    wheel inside some other repository reports "unknown", not that repository.
    """
    package = Path(__file__).resolve().parent
    git = ["git", "-C", str(package)]
    try:
        top = subprocess.run([*git, "rev-parse", "--show-toplevel"], capture_output=True, text=True, timeout=10)
        if top.returncode != 0 or not (Path(top.stdout.strip()) / package.name / "__init__.py").is_file():
            return "unknown"
        if not (Path(top.stdout.strip()) / package.name).resolve() == package:
            return "unknown"
        described = subprocess.run([*git, "describe", "--always", "--dirty", "--abbrev=12"],
                                   capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return described.stdout.strip() if described.returncode == 0 and described.stdout.strip() else "unknown"


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
    """sha256 of a file, or of a directory's files (names and contents, sorted).

    Symlinks inside a directory are hashed by their target text, never
    followed: an artifact's hash covers only what is inside it.
    """
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for file in _tree_entries(path):
        digest.update(str(file.relative_to(path)).encode())
        if file.is_symlink():
            digest.update(b"symlink:" + os.readlink(file).encode(errors="surrogateescape"))
        else:
            digest.update(sha256_file(file).encode())
    return digest.hexdigest()


def _tree_entries(path: Path) -> list[Path]:
    """Regular files and symlinks under ``path``, without following symlinked directories."""
    found = []
    for root, dirs, files in os.walk(path, followlinks=False):
        found.extend(Path(root) / name for name in files)
        found.extend(Path(root) / name for name in dirs if os.path.islink(os.path.join(root, name)))
    return sorted(p for p in found if p.is_symlink() or stat.S_ISREG(p.lstat().st_mode))


def size_of(path: Path) -> int:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.lstat().st_size for p in _tree_entries(path) if not p.is_symlink())


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
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates the file 0600; the written file gets the usual umask mode.
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
