"""One writer per output: an exclusive lock held while a long command writes a file.

The lock is a hidden ``.NAME.lock`` file beside the output, locked with ``flock``: the operating system
frees it when its process ends, however it ends, so a killed command leaves no lock to clear by hand.
The file names the process that holds it (for the message of the one refused) and is removed on release.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from curate.common.atomic import work_name
from curate.common.errors import StemcurateError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock; outputs are then not locked
    fcntl = None


def _holder(lock: Path) -> str:
    try:
        text = lock.read_text(encoding="utf-8").strip()
    except OSError:
        text = ""
    return f" ({text})" if text else ""


@contextlib.contextmanager
def exclusive(path: str | os.PathLike, *, what: str, wait_s: float = 0.0) -> Iterator[None]:
    """Hold the lock of ``path`` for the block. :class:`StemcurateError` naming ``path`` and the process that
    holds it when another ``what`` (``"curate scan"``) writes it now and still does after ``wait_s``
    seconds (a short write, such as one decision, waits its turn)."""
    path = Path(path)
    deadline = time.monotonic() + wait_s
    if fcntl is None:
        yield
        return
    lock = path.parent / work_name(path.name, ".lock", path.parent)
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StemcurateError(f"{path}: cannot take its lock {lock.name} ({exc.strerror or exc})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() < deadline:
                time.sleep(0.02)
                continue
            raise StemcurateError(
                f"{path}: another {what} is writing it{_holder(lock)}; wait for it to end, or write to another path"
            ) from None
        try:  # a holder that just ended removed the file it locked: lock the one now at the path
            if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"process {os.getpid()} on {socket.gethostname()}\n".encode())
        except OSError as exc:  # a full disk: the command could write nothing else either
            raise StemcurateError(f"{path}: cannot write ({exc.strerror or exc})") from None
        yield
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()
        os.close(fd)
