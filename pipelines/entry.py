"""Console-script entry point of ``pipelines`` (see :func:`curate.entry.run_app`)."""

from __future__ import annotations

from curate.entry import run_app


def pipelines() -> None:
    """``pipelines``: :mod:`pipelines.cli`."""
    run_app("pipelines.cli")
