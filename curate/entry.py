"""Console-script entry points of ``curate`` and ``pipelines``.

The command-line modules are imported here rather than by the script wrapper, so that Ctrl-C while
they load (torch alone takes seconds) ends with one line and exit code 130, as an interrupt during
a command does (:func:`curate.common.cliutil.guarded`), instead of a traceback.
"""

from __future__ import annotations

import importlib
import sys


def _run(module: str) -> None:
    try:
        app = importlib.import_module(module).app
    except KeyboardInterrupt:
        print("interrupted while starting; nothing was done", file=sys.stderr)
        raise SystemExit(130) from None
    app()


def curate() -> None:
    """``curate``: :mod:`curate.cli`."""
    _run("curate.cli")


def pipelines() -> None:
    """``pipelines``: :mod:`pipelines.cli`."""
    _run("pipelines.cli")
