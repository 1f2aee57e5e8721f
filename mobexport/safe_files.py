"""Reading and writing the files a sweep owns, as a crash-safe database would.

Results files, baselines and suites are copied between machines and
committed to repositories, so every read treats them as untrusted: only a
regular file is opened (a FIFO would hang the read), its size is bounded, its
bytes must be UTF-8 and its numbers finite. Every whole file is written to a
temporary file beside it, fsynced and renamed into place; an append is
fsynced, and undone if it could not be written completely. A full disk or a
file-size limit becomes one line naming what ran out.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

from mobexport.errors import BenchmarkError, OutputDirError

# Far above any real results file (a 1000-case sweep of 1000 samples is ~30 MB).
MAX_READ_BYTES = 512 * 2**20

RAN_OUT = {
    errno.ENOSPC: "the disk is full",
    errno.EFBIG: "the file-size limit was reached (ulimit -f)",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


def why_write_failed(exc: OSError) -> str:
    """What ran out, in words: 'the disk is full', 'the file-size limit was reached (ulimit -f)'..."""
    return RAN_OUT.get(exc.errno, exc.strerror or str(exc))


def write_failed(path: Path, exc: OSError, what: str, hint: str = "free some space or choose another --out"
                 ) -> OutputDirError:
    """The one-line error for a file that could not be written."""
    return OutputDirError(f"cannot write {what} '{path}': {why_write_failed(exc)}", hint)


def read_untrusted_text(path: Path, what: str, hint: str, limit: int = MAX_READ_BYTES) -> str:
    """The text of a regular file of at most ``limit`` bytes, decoded as UTF-8; anything else is one line."""
    path = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below as not a regular file.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise BenchmarkError(f"{what} '{path}' does not exist", hint) from None
    except OSError as exc:
        raise BenchmarkError(f"{what} '{path}' cannot be read ({exc.strerror or exc})", hint) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise BenchmarkError(f"{what} '{path}' is not a regular file", hint)
        if info.st_size > limit:
            raise BenchmarkError(f"{what} '{path}' is {info.st_size} bytes, more than the {limit}-byte limit", hint)
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise BenchmarkError(f"{what} '{path}' cannot be read ({exc.strerror or exc})", hint) from None
    finally:
        os.close(fd)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise BenchmarkError(f"{what} '{path}' is not UTF-8 text (byte {exc.start}, line {line})", hint) from None


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a finite number")


def loads_json(text: str, where: str, hint: str):
    """JSON without NaN/Infinity (Python's json accepts them) and without nesting that exhausts the stack."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise BenchmarkError(f"{where} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})",
                             hint) from None
    except ValueError as exc:
        raise BenchmarkError(f"{where}: {exc}", hint) from None
    except RecursionError:
        raise BenchmarkError(f"{where} is nested too deeply to be a mobexport file", hint) from None


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync a directory; the rename is still atomic
    finally:
        os.close(fd)


def write_bytes_durably(path: Path, data: bytes, what: str, hint: str = "free some space or choose another --out",
                        mode: int | None = None, make_parents: bool = False) -> Path:
    """Temporary file beside ``path``, fsync, rename: a reader sees the old file or the new one, never half."""
    path = Path(path)
    tmp = None
    try:
        if make_parents:
            path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, mode if mode is not None else 0o666 & ~umask)  # mkstemp made it private
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise write_failed(path, exc, what, hint) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    _fsync_directory(path.parent)
    return path


def write_text_durably(path: Path, text: str, what: str, hint: str = "free some space or choose another --out"
                       ) -> Path:
    return write_bytes_durably(path, text.encode("utf-8"), what, hint)


def copy_durably(source: Path, destination: Path, what: str, hint: str) -> Path:
    """A durable copy of ``source`` (the previous version of a file, kept before it is replaced)."""
    try:
        data = Path(source).read_bytes()
    except OSError as exc:
        raise BenchmarkError(f"cannot read '{source}' to keep a copy ({exc.strerror or exc})", hint) from None
    path = write_bytes_durably(destination, data, what, hint)
    try:
        shutil.copystat(source, path)
    except OSError:
        pass
    return path


def append_line_durably(path: Path, line: str, what: str) -> None:
    """Append one line and fsync it; a failed append is cut back off, so the file never ends torn.

    If the file does not end with a newline (a line torn by a crash that the
    reader let through), the new line still starts on a line of its own.
    """
    data = line.rstrip("\n").encode("utf-8") + b"\n"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
    except OSError as exc:
        raise write_failed(Path(path), exc, what) from None
    try:
        size = os.fstat(fd).st_size
        if size:
            os.lseek(fd, size - 1, os.SEEK_SET)
            if os.read(fd, 1) != b"\n":
                data = b"\n" + data
        try:
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
            os.fsync(fd)
        except OSError as exc:
            try:
                os.ftruncate(fd, size)
            except OSError:
                pass  # the reader ignores a torn last line
            raise write_failed(Path(path), exc, what) from None
    finally:
        os.close(fd)
