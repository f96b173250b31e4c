"""Atomic output: write to a temporary file (or folder) beside the target, then rename."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from curate.common.errors import StemcurateError
from curate.common.outputs import output_path


def _takes_files(folder: Path, name: Path) -> None:
    """:class:`StemcurateError` naming ``name`` unless a file can be created in ``folder``.

    ``os.access`` says yes for root everywhere; a folder such as ``/proc`` still takes no new file, so
    this creates (and removes) one.
    """
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise StemcurateError(f"{name}: cannot write in {folder} ({exc.strerror or exc})") from None


def _make_parent(path: Path) -> Path:
    parent = path.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StemcurateError(f"{path}: cannot create output folder ({exc.strerror})") from None
    if path.is_dir():
        raise StemcurateError(f"{path}: is a folder, expected a file path")
    return parent


def ensure_writable_dir(path: str | os.PathLike) -> None:
    """Up-front check of an output file path: create its parent folder if needed and raise a one-line
    :class:`StemcurateError` naming ``path`` when no file can be written there, or ``path`` is a folder."""
    path = output_path(path)
    _takes_files(_make_parent(path), path)


def check_folder(path: str | os.PathLike) -> Path:
    """:class:`StemcurateError` naming ``path`` unless it is a folder that takes files, or could be
    created as one (its nearest existing parent takes files); creates nothing."""
    path = output_path(path)
    if path.exists() and not path.is_dir():
        raise StemcurateError(f"{path}: exists and is not a folder")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise StemcurateError(f"{path}: cannot be created ({parent} is a file)")
    _takes_files(parent, path)
    return path


def make_dir(path: str | os.PathLike) -> Path:
    """Create the folder ``path`` (and its parents) and check that files can be written in it;
    :class:`StemcurateError` naming it otherwise (a file in the way, ``/proc``, no permission)."""
    return make_dirs(path)[0]


def make_dirs(*paths: str | os.PathLike) -> list[Path]:
    """:func:`make_dir` for several folders, every one checked for a file in its way before any is created
    (a run that cannot have all of its folders leaves none behind)."""
    out = [output_path(p) for p in paths]
    for path in out:
        if path.exists() and not path.is_dir():
            raise StemcurateError(f"{path}: exists and is not a folder")
    created: list[Path] = []  # the folders this call made, parents first
    try:
        for path in out:
            missing = [p for p in [path, *path.parents] if not p.exists()][::-1]
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StemcurateError(f"{path}: cannot create this folder ({exc.strerror or exc})") from None
            finally:
                created += [p for p in missing if p.is_dir()]
            _takes_files(path, path)
    except BaseException:
        for p in reversed(created):  # only what is still empty: nothing another process put there
            with contextlib.suppress(OSError):
                p.rmdir()
        raise
    return out


def _name_max(folder: Path) -> int:
    """The longest file name ``folder``'s file system takes, in bytes (255 where it does not say)."""
    try:
        return int(os.pathconf(folder if folder.exists() else folder.parent, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return 255


def work_name(name: str, suffix: str, folder: Path, *, room: int = 0) -> str:
    """A hidden work name for ``name`` in ``folder``: ``.NAME<suffix>``, or, where that (plus ``room``
    bytes still to be added) would pass the file system's name limit, ``.<hash of NAME><suffix>``: a name
    that fits the limit itself must not fail for the few bytes a work name adds."""
    full = f".{name}{suffix}"
    if len(full.encode("utf-8", "surrogateescape")) + room <= _name_max(folder):
        return full
    return f".{hashlib.sha1(name.encode('utf-8', 'surrogateescape')).hexdigest()[:16]}{suffix}"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it onto ``path``.

    On any exception the temporary file is removed and an existing ``path`` is left untouched; an
    operating-system error (a folder that takes no files such as ``/proc``, a full disk, also when the
    writing library reports it in its own words: :func:`system_error`) becomes a
    :class:`StemcurateError` naming ``path``.
    """
    path = output_path(path)
    parent = _make_parent(path)  # mkstemp below is the probe: no extra file on this hot path
    try:
        # mkstemp adds 8 random characters between prefix and suffix
        fd, tmp = tempfile.mkstemp(prefix=work_name(path.name, ".", parent, room=12), suffix=".tmp", dir=parent)
    except OSError as exc:
        raise StemcurateError(f"{path}: cannot write here ({exc.strerror or exc})") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp_path, path)
    except OSError as exc:  # pyarrow's has no strerror ("Error writing bytes to file. Detail: [errno 28] ...")
        reason = os.strerror(exc.errno) if exc.errno else (system_error(parent) or str(exc))
        tmp_path.unlink(missing_ok=True)
        raise StemcurateError(f"{path}: cannot write ({reason})") from None
    except StemcurateError:
        tmp_path.unlink(missing_ok=True)
        raise
    except Exception:  # a writer's own error (torch's "unexpected pos", libsndfile's "System error.")
        reason = system_error(parent)  # before the partial file frees its space
        tmp_path.unlink(missing_ok=True)
        if reason is None:
            raise
        raise StemcurateError(f"{path}: cannot write ({reason})") from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def system_error(folder: Path) -> str | None:
    """The operating system's own reason why ``folder`` takes no more data (``No space left on device``, a
    quota), found by writing a little there (libraries say "System error." or "unexpected pos"); None when
    it writes."""
    try:
        with tempfile.TemporaryFile(dir=folder) as probe:
            probe.write(b"\0" * 65536)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a hidden folder ``.NAME.partial`` beside ``path`` to fill (:func:`work_name`: a hashed name where
    ``NAME`` is near the file system's limit); on success rename it to ``path`` (which must not exist, or be
    an empty folder). On any exception (an interrupt too) the partial folder is removed: no half-written copy
    is left behind, and a rerun is not refused."""
    path = output_path(path)
    work = path.parent / work_name(path.name, ".partial", path.parent)
    if work.exists():
        shutil.rmtree(work)
    make_dir(work)
    try:
        yield work
        if path.exists():
            path.rmdir()
        work.rename(path)
    except (StemcurateError, OSError) as exc:  # said at the user's path, not the hidden work folder's
        shutil.rmtree(work, ignore_errors=True)
        said = _at_users_path(exc, work, path)
        if said is None:
            raise
        raise StemcurateError(said) from None
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _at_users_path(exc: BaseException, work: Path, path: Path) -> str | None:
    """The message of ``exc`` with the work folder ``work`` read as ``path`` (None when it does not name it)."""
    if isinstance(exc, OSError):
        named = next((f for f in (exc.filename, exc.filename2) if f is not None and str(work) in str(f)), None)
        if named is None:
            return None
        return f"{str(named).replace(str(work), str(path))}: cannot write ({exc.strerror or exc})"
    text = str(exc)
    return text.replace(str(work), str(path)) if str(work) in text else None


@contextlib.contextmanager
def filling_dir(folder: str | os.PathLike, *, marker: tuple[str, str] | None = None) -> Iterator[Path]:
    """Create ``folder`` (and its parents) for the block, first writing its hidden ``marker`` file
    ``(name, text)`` (what wrote the folder) when given. On any exception the folders this made are removed
    with what was written in them (a folder that was there is left as it is), and a failed marker write is
    said at ``folder``, not at the hidden file."""
    folder = output_path(folder)
    made = next((p for p in [*reversed(folder.parents), folder] if not p.exists()), None)
    make_dir(folder)
    try:
        if marker is not None:
            try:
                write_text(folder / marker[0], marker[1])
            except StemcurateError as exc:
                raise StemcurateError(str(exc).replace(str(folder / marker[0]), str(folder))) from None
        yield folder
    except BaseException:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
