"""Atomic output: write to a temporary file (or folder) beside the target, then rename."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from curate.errors import StemcurateError


def ensure_writable_dir(path: Path) -> None:
    """Create ``path``'s parent folder if needed; raise a one-line error when it can't be written."""
    parent = Path(path).resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StemcurateError(f"{path}: cannot create output folder ({exc.strerror})") from None
    if not os.access(parent, os.W_OK):
        raise StemcurateError(f"{path}: output folder {parent} is not writable")
    if Path(path).is_dir():
        raise StemcurateError(f"{path}: is a folder, expected a file path")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it onto ``path``.

    On any exception the temporary file is removed and an existing ``path`` is left untouched.
    """
    path = Path(path)
    ensure_writable_dir(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.resolve().parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a hidden folder ``.NAME.partial`` beside ``path`` to fill; on success rename it to ``path``
    (which must not exist, or be an empty folder). On any exception (an interrupt too) the partial folder
    is removed: no half-written copy is left behind, and a rerun is not refused."""
    path = Path(path)
    work = path.parent / f".{path.name}.partial"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    try:
        yield work
        if path.exists():
            path.rmdir()
        work.rename(path)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
