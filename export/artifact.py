"""An artifact on disk: its directory, main file and manifest.

Layout, for ``OUT/MODEL/TARGET``::

    OUT/MODEL/TARGET -> .TARGET.v-<id>       a symlink: the published version
    OUT/MODEL/.TARGET.v-<id>/                manifest.json, the artifact, .mobexport-owned
    OUT/MODEL/.TARGET.partial-<pid>-<rand>/  staging of an export in progress

Why versioned directories and one symlink: an export is assembled in a staging
directory and published by a single ``rename(2)`` of a fresh symlink over
``TARGET``. There is no moment without an artifact (a crash leaves either the
old version or the new one published), and a reader that resolves the link once
reads one version's manifest and file together, never the old manifest beside
the new file.

Writers and readers also take an ``flock`` on ``OUT/MODEL``: writers
exclusively while they publish and retire the previous version, readers shared
while they read and hash. So a finished export never deletes a version under a
reader, and two exports finishing at once publish one after the other. A lock
on the directory itself needs no lock file, so reading never writes.

Retiring a version removes only the entries mobexport wrote (listed in
``.mobexport-owned``); anything a user put in the artifact directory moves into
the new version. Staging directories of dead processes are swept by the next
export into the same parent.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from mobexport.errors import OutputDirError
from mobexport.manifest import MANIFEST_NAME, Manifest, ManifestError, current_umask, sha256_tree
from mobexport.processes import is_alive

log = logging.getLogger(__name__)

OWNED_LIST = ".mobexport-owned"
PARTIAL_TAG = ".partial-"
VERSION_TAG = ".v-"
LINK_TAG = ".link-"
LEGACY_OLD_TAG = ".old-"  # the aside-directory of mobexport versions that swapped with two renames


@dataclass
class Artifact:
    directory: Path
    manifest: Manifest
    root: Path | None = None  # the version directory ``directory`` resolved to when it was opened

    @property
    def path(self) -> Path:
        """The main file, inside the version directory; refuses a manifest naming anything outside it."""
        root = self.root or self.directory.resolve()
        return confined(root, self.manifest.artifact.get("file"), what="artifact.file")

    @property
    def display_path(self) -> Path:
        """The main file as users reach it: through ``directory``, not the hidden version directory."""
        return self.directory / self.path.name

    @classmethod
    def open(cls, path: Path) -> "Artifact":
        """An artifact from its directory, its manifest or its main file."""
        with cls.reading(path) as artifact:
            return artifact

    @classmethod
    @contextlib.contextmanager
    def reading(cls, path: Path) -> Iterator["Artifact"]:
        """Open an artifact and hold a shared lock while the caller reads it (hash checks, loading)."""
        typed = str(path)
        path = Path(path)
        if not os.path.lexists(path):
            raise ManifestError(f"'{typed}' does not exist",
                                "give an artifact directory, its manifest.json or its main file")
        directory, main = _artifact_directory(path, typed)
        with shared_lock(directory.parent):
            try:
                root = directory.resolve()  # the user named this directory: it may be a link to anywhere
            except (OSError, RuntimeError) as exc:
                raise ManifestError(f"'{typed}' cannot be resolved ({exc})", "is it a symlink loop?") from None
            manifest = Manifest.read_file(confined(root, MANIFEST_NAME, what="manifest.json"))
            artifact = cls(directory, manifest, root)
            artifact_path = artifact.path  # confinement is checked before anything reads the file
            if main is not None and main != artifact_path.name:
                raise ManifestError(f"'{typed}' is not the main file of the artifact in '{directory}'",
                                    f"its manifest names '{artifact_path.name}'; inspect the directory instead")
            yield artifact

    def verify_hash(self) -> bool:
        path = self.path
        return os.path.lexists(path) and sha256_tree(path) == self.manifest.artifact.get("sha256")


def _artifact_directory(path: Path, typed: str) -> tuple[Path, str | None]:
    """The artifact directory ``path`` names, and the main-file name it named (if it named one)."""
    if path.is_dir() and (path / MANIFEST_NAME).exists():
        return path, None
    if path.name == MANIFEST_NAME and not path.is_dir():
        return path.parent, None
    if (path.parent / MANIFEST_NAME).exists():  # a main file, or a Core ML package directory
        return path.parent, path.name
    if path.is_dir():
        raise ManifestError(f"no {MANIFEST_NAME} in '{typed}'", "is it an artifact directory mobexport wrote?")
    raise ManifestError(f"'{typed}' is not an artifact: no {MANIFEST_NAME} beside it",
                        "give an artifact directory, its manifest.json or its main file")


def confined(root: Path, name: object, what: str) -> Path:
    """``root / name``, refused unless ``name`` is relative and resolves (after symlinks) inside ``root``.

    Like tarfile's data filter: a manifest is untrusted input, and a name such
    as ``../../etc/passwd``, ``/`` or a symlink to elsewhere must not make
    mobexport read, hash or load a file outside the artifact.
    """
    root = Path(root)
    if not isinstance(name, str) or not name or "\x00" in name or os.path.isabs(name):
        raise ManifestError(f"{what} {name!r} is not a relative path inside the artifact directory",
                            "the manifest was edited or does not come from mobexport; re-export it")
    candidate = root / name
    try:
        resolved = candidate.resolve()
        real_root = root.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop: RuntimeError before Python 3.13, OSError after
        raise ManifestError(f"{what} {name!r} cannot be resolved ({exc})", "re-export the artifact") from None
    if resolved == real_root or real_root not in resolved.parents:
        raise ManifestError(f"{what} {name!r} points outside the artifact directory '{root}'",
                            "refusing to read it; re-export the artifact")
    return candidate


# ---------------------------------------------------------------------------- locks


@contextlib.contextmanager
def _flock(directory: Path, operation: int) -> Iterator[int | None]:
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        yield None  # an unreadable or vanished parent: nothing to coordinate with
        return
    try:
        fcntl.flock(fd, operation)
        yield fd
    finally:
        os.close(fd)  # closing releases the lock


def shared_lock(directory: Path):
    """Held by readers: no version under them is retired meanwhile."""
    return _flock(directory, fcntl.LOCK_SH)


def exclusive_lock(directory: Path):
    """Held by a writer while it publishes a version and retires the previous one."""
    return _flock(directory, fcntl.LOCK_EX)


# ---------------------------------------------------------------------------- writing


def check_destination(final: Path) -> None:
    """Refuse, before any work, to publish over something that is not one of mobexport's artifacts."""
    final = Path(final)
    if final.is_symlink():
        if not _is_our_link(final):
            raise OutputDirError(f"'{final}' is a symlink mobexport did not make",
                                 "remove it or choose another --out; mobexport does not replace it")
    elif final.is_dir():
        if not (final / MANIFEST_NAME).is_file():
            raise OutputDirError(f"'{final}' is a directory mobexport did not write (no {MANIFEST_NAME})",
                                 "move it away or choose another --out; mobexport does not replace it")
    elif os.path.lexists(final):
        raise OutputDirError(f"'{final}' exists and is not an artifact directory",
                             "move it away or choose another --out; mobexport does not replace it")


@contextlib.contextmanager
def staging_directory(final: Path) -> Iterator[Path]:
    """Yield a private staging directory that becomes ``final``'s published version on success only."""
    final = Path(final)
    check_destination(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale(final.parent)
        staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}{PARTIAL_TAG}{os.getpid()}-"))
    except OSError as exc:
        raise OutputDirError(
            f"cannot write to '{final.parent}' ({exc.strerror or exc})", "choose another directory with --out"
        ) from None
    try:
        yield staging
        publish(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def publish(staging: Path, final: Path) -> Path:
    """Make the finished ``staging`` directory the version ``final`` points at; returns that version."""
    parent = final.parent
    make_public_and_durable(staging)
    owned = sorted(entry.name for entry in staging.iterdir())
    _write_owned_list(staging, [*owned, OWNED_LIST])
    with exclusive_lock(parent) as lock_fd:
        version = parent / f".{final.name}{VERSION_TAG}{time.time_ns():x}-{secrets.token_hex(3)}"
        os.rename(staging, version)
        previous = _published_version(final)
        if final.exists() and not final.is_symlink():  # a directory from before versioned artifacts
            previous = parent / f".{final.name}{VERSION_TAG}legacy-{secrets.token_hex(3)}"
            os.rename(final, previous)
        link = parent / f".{final.name}{LINK_TAG}{os.getpid()}-{secrets.token_hex(3)}"
        os.symlink(version.name, link)
        os.replace(link, final)  # the one atomic step: readers see the old version or the new one
        if lock_fd is not None:
            os.fsync(lock_fd)
        if previous is not None and previous.resolve() != version.resolve():
            retire(previous, version)
        for stale in _versions(parent, final.name):
            if stale.resolve() != version.resolve():
                retire(stale, version)
    return version


def _published_version(final: Path) -> Path | None:
    """The version directory the symlink ``final`` points at, if it is one of ours."""
    if not _is_our_link(final):
        return None
    target = final.parent / os.readlink(final)
    return target if target.is_dir() and not target.is_symlink() else None


def _is_our_link(final: Path) -> bool:
    """``final`` is a symlink to a sibling version directory, the only kind mobexport makes."""
    if not final.is_symlink():
        return False
    name = os.readlink(final)
    return "/" not in name and name.startswith(f".{final.name}{VERSION_TAG}")


def _versions(parent: Path, name: str) -> list[Path]:
    """Version and legacy aside-directories of ``name`` (the caller holds the exclusive lock)."""
    prefixes = (f".{name}{VERSION_TAG}", f".{name}{LEGACY_OLD_TAG}")
    return [p for p in parent.iterdir() if p.name.startswith(prefixes) and p.is_dir() and not p.is_symlink()]


def retire(old: Path, current: Path) -> None:
    """Remove what mobexport wrote in ``old``; move anything else (a user's files) into ``current``."""
    owned = _owned_entries(old)
    # The owned list goes last and the manifest just before it: a retirement cut short by a
    # kill still knows, next time, which of the remaining entries are mobexport's.
    last = {OWNED_LIST: 2, MANIFEST_NAME: 1}
    for entry in sorted(old.iterdir(), key=lambda p: (last.get(p.name, 0), p.name)):
        if entry.name in owned:
            _remove(entry)
            continue
        destination = current / entry.name
        if os.path.lexists(destination):
            log.warning("kept '%s': a file of that name is part of the new export", entry)
            continue
        os.rename(entry, destination)
        log.warning("moved your file '%s' into the re-exported artifact", entry.name)
    try:
        old.rmdir()
    except OSError:
        log.warning("kept '%s': it still holds files mobexport did not write", old)


def _owned_entries(version: Path) -> set[str]:
    """What mobexport wrote in ``version``: its owned list, or (older versions) the manifest and main file."""
    try:
        names = json.loads((version / OWNED_LIST).read_text())
        if isinstance(names, list) and all(isinstance(n, str) for n in names):
            return set(names)
    except (OSError, ValueError):
        pass
    owned = {MANIFEST_NAME, OWNED_LIST}
    try:
        name = Manifest.read(version / MANIFEST_NAME).artifact.get("file")
        confined(version, name, what="artifact.file")
        owned.add(name)
    except ManifestError:
        pass
    return owned


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry)
    else:
        entry.unlink(missing_ok=True)


def _write_owned_list(directory: Path, names: list[str]) -> None:
    with open(directory / OWNED_LIST, "w") as f:
        json.dump(names, f)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(directory / OWNED_LIST, 0o666 & ~current_umask())


def make_public_and_durable(directory: Path) -> None:
    """Give every file and directory the umask's usual mode and flush every file to disk.

    Staging is created private (0700) and some converters write 0600 files into
    it; a published artifact must read like any other file the user made.
    """
    umask = current_umask()
    for root, _, files in os.walk(directory):  # symlinked directories are not followed
        os.chmod(root, 0o777 & ~umask)
        for name in files:
            path = os.path.join(root, name)
            info = os.lstat(path)
            if not stat.S_ISREG(info.st_mode):
                continue
            executable = info.st_mode & 0o111
            os.chmod(path, (0o777 if executable else 0o666) & ~umask)
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


# ---------------------------------------------------------------------------- sweeping


def sweep_stale(parent: Path) -> list[Path]:
    """Remove staging directories and link temporaries left in ``parent`` by processes that are gone."""
    removed = []
    for entry in parent.iterdir():
        pid = _owner_pid(entry.name)
        if pid is None or pid == os.getpid() or is_alive(pid):
            continue
        _remove(entry)
        removed.append(entry)
        log.info("removed '%s' left by an interrupted export (process %d)", entry, pid)
    return removed


def _owner_pid(name: str) -> int | None:
    for tag in (PARTIAL_TAG, LINK_TAG):
        if name.startswith(".") and tag in name:
            digits = name.split(tag, 1)[1].split("-", 1)[0]
            return int(digits) if digits.isdigit() else None
    return None


