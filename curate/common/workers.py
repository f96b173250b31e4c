"""Worker processes that stop at once on Ctrl-C, however often it is pressed.

A terminal's Ctrl-C reaches every process of the foreground group: the main process and each worker.
A worker interrupted inside a job can block on its result pipe, and the main process then waits on it
for ever. Here the workers ignore SIGINT; the main process, on its first interrupt (or any other
error), ignores further ones, drops the queued jobs, ends the workers (SIGTERM, then SIGKILL) and
raises the interrupt, so that its handler prints one line and nothing runs on behind it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator


def _quiet_worker(initializer: Callable[[], None] | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer()


@contextlib.contextmanager
def _no_interrupts() -> Iterator[None]:
    """SIGINT ignored inside (in the main thread; elsewhere signals cannot be set and none arrive)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def stop(pool: concurrent.futures.ProcessPoolExecutor, *, grace_s: float = 5.0) -> None:
    """Drop ``pool``'s queued jobs and end its workers now: SIGTERM, then SIGKILL after ``grace_s`` s.

    On return every worker has exited and reports it (``is_alive()`` is False). The pool's own manager
    thread reaps the workers too; a worker it reaps first reads as alive here until that thread records
    the exit code, so the thread is waited for as well."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # no public handle before Python 3.14
    manager = getattr(pool, "_executor_manager_thread", None)
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        p.terminate()
    for p in processes:
        p.join(grace_s)
        if p.is_alive():
            p.kill()
            p.join(grace_s)
    if manager is not None:
        manager.join(grace_s)
    deadline = time.monotonic() + grace_s
    while any(p.is_alive() for p in processes) and time.monotonic() < deadline:
        time.sleep(0.01)


@contextlib.contextmanager
def worker_pool(
    workers: int, *, initializer: Callable[[], None] | None = None
) -> Iterator[concurrent.futures.ProcessPoolExecutor]:
    """A :class:`~concurrent.futures.ProcessPoolExecutor` of ``workers`` processes that ignore SIGINT
    (``initializer`` runs in each after that). Leaving the block normally waits for the jobs; leaving it
    by an exception (KeyboardInterrupt included) ends the workers at once, with further interrupts
    ignored meanwhile, and re-raises."""
    pool = concurrent.futures.ProcessPoolExecutor(  # looked up at each call (a test may stand in for it)
        max_workers=workers, initializer=_quiet_worker, initargs=(initializer,)
    )
    try:
        yield pool
    except BaseException:
        with _no_interrupts():
            stop(pool)
        raise
    pool.shutdown(wait=True)
