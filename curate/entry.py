"""Console-script entry point of ``curate`` (``pipelines``: :mod:`pipelines.entry`).

The command-line modules are imported here rather than by the script wrapper, so that Ctrl-C while
they load (torch alone takes seconds) ends with one line and exit code 130, as an interrupt during
a command does (:func:`curate.common.cliutil.guarded`), instead of a traceback.
"""

from __future__ import annotations

import importlib
import sys


def run_app(module: str) -> None:
    """Import ``module`` and run its Typer ``app`` (:func:`curate.common.cliutil.invoke`: usage errors are one
    line); Ctrl-C during the import is one line and exit code 130."""
    try:
        app = importlib.import_module(module).app
        from curate.common.cliutil import invoke
    except KeyboardInterrupt:
        print("interrupted while starting; nothing was done", file=sys.stderr)
        raise SystemExit(130) from None
    invoke(app)


def curate() -> None:
    """``curate``: :mod:`curate.cli`."""
    run_app("curate.cli")
