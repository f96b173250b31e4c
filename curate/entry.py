"""Console-script entry point of ``curate`` (``pipelines``: :mod:`pipelines.entry`).

The command-line modules are imported here rather than by the script wrapper, so that Ctrl-C while
they load (torch alone takes seconds) ends with one line and exit code 130, as an interrupt during
a command does (:func:`curate.common.cliutil.guarded`), instead of a traceback.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys


class Interrupts:
    """The console scripts' SIGINT handler. The first Ctrl-C raises KeyboardInterrupt, and the command
    stops cleanly (finished work kept, worker processes ended, one line said); a second only says that it
    is stopping, so that it cannot cut that clean-up short; a third quits at once, ending the worker
    processes (what was unfinished is lost; every file is written atomically, so none is half-written)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, signum, frame) -> None:
        self.count += 1
        if self.count == 1:
            raise KeyboardInterrupt
        if self.count == 2:  # os.write: print could re-enter a write the signal cut
            os.write(2, b"stopping cleanly, please wait (Ctrl-C once more quits at once)\n")
            return
        import multiprocessing

        for child in multiprocessing.active_children():
            child.kill()
        os._exit(130)


def run_app(module: str) -> None:
    """Import ``module`` and run its Typer ``app`` (:func:`curate.common.cliutil.invoke`: usage errors are one
    line) under :class:`Interrupts`; Ctrl-C during the import is one line and exit code 130."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where the caller ignores it
        signal.signal(signal.SIGINT, Interrupts())
    try:
        app = importlib.import_module(module).app
        from curate.common.cliutil import invoke
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second press while the process ends changes nothing
        print("interrupted while starting; nothing was done", file=sys.stderr)
        raise SystemExit(130) from None
    try:
        invoke(app)
    finally:  # the interpreter's own shutdown (which turns a Python handler back into the kill) is not cut short
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def curate() -> None:
    """``curate``: :mod:`curate.cli`."""
    run_app("curate.cli")
