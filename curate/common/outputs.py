"""Which existing files an output may replace: the one rule of every command that writes a file.

An output path may be new, or hold an earlier output of the same kind (a manifest re-scanned, a
report or results file written again). Everything else is refused before any work starts, in one
line naming the path: one of the command's own inputs, a folder, or a file of another kind (a
manifest given as the HTML report's path, a text file given as the manifest's). Kinds are read from
the file itself: the ``stemcurate.kind`` metadata of a Parquet table, the ``generator`` meta tag
of an HTML report. Outputs are then written atomically (:mod:`curate.common.atomic`).
"""

from __future__ import annotations

import os
from pathlib import Path

from curate.common.errors import StemcurateError

HTML_GENERATOR = '<meta name="generator" content="stemcurate '
"""How the tag every HTML report carries in its head starts; its content goes on with the report's
kind (``curation report``, ``run report``): how a report is told from other HTML files and from the
other kind of report."""

META_KIND = b"stemcurate.kind"
"""Parquet metadata key that names what a stemcurate Parquet file is (manifest, problems, results, ...)."""
LOG_HEADER = "# stemcurate evaluation log"
"""The first line of ``pipelines evaluate``'s text log."""


PARQUET_KINDS = ("manifest", "problems", "results", "corruptions", "repairs")
"""The kinds of output written as Parquet tables."""


def file_kind(path: str | Path) -> str | None:
    """The stemcurate kind of an existing file: ``manifest``, ``problems``, ``results``, ``corruptions``,
    ``repairs`` (Parquet metadata), ``curation report``, ``run report`` (HTML), ``evaluation log``, or None for
    anything else."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
            if head[:4] == b"PAR1":
                import pyarrow.parquet as pq

                kind = (pq.read_schema(path).metadata or {}).get(META_KIND)
                return kind.decode() if kind else None
    except Exception:  # unreadable, or not a valid Parquet footer: not one of ours
        return None
    if head.startswith(LOG_HEADER.encode()):
        return "evaluation log"
    at = head.find(HTML_GENERATOR.encode())
    if at < 0:
        return None
    kind = head[at + len(HTML_GENERATOR) :].split(b'"', 1)[0]
    return kind.decode("utf-8", "replace") or None


NAME_MAX = 255
"""Longest file or folder name, bytes (Linux, macOS and Windows file systems alike)."""


def output_path(path: str | os.PathLike) -> Path:
    """``path`` as the file or folder that writing to it touches.

    A path through a folder that does not exist and back out (``new/../data``) names ``data`` once
    the missing parents are created, yet checks on the path as given see nothing there (``new`` is
    missing); such a path is resolved before it is checked or written. A name longer than
    :data:`NAME_MAX` bytes is a :class:`StemcurateError`. Every command's outputs go through this first.
    """
    path = Path(path)
    for part in path.parts:  # the kernel's limit on one name; checked here, not met as a traceback later
        if len(os.fsencode(part)) > NAME_MAX:
            raise StemcurateError(
                f"{path}: the name {part[:40]!r}... is {len(os.fsencode(part))} bytes long, more than the "
                f"{NAME_MAX} a file name may have"
            )
    return path.resolve() if ".." in path.parts else path


def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output(path: str | Path, kind: str, *, inputs=(), option: str = "") -> Path:
    """``path`` when a command may write its ``kind`` output there; :class:`StemcurateError` otherwise.

    Refused: a path that is one of ``inputs`` (files or folders the command reads), a folder, and an
    existing file of another kind than ``kind`` (see :func:`file_kind`). ``option`` names the option
    in the message (``--output``).
    """
    path = output_path(path)
    where = f"{path}" + (f" ({option})" if option else "")
    for item in inputs:
        if item is not None and (_same(path, Path(item)) or path.resolve() == Path(item).resolve()):
            raise StemcurateError(f"{where}: is also an input of this command; write the {kind} elsewhere")
    if path.is_dir():
        raise StemcurateError(f"{where}: is a folder, expected a file path for the {kind}")
    if path.exists():
        found = file_kind(path)
        if found != kind:
            what = f"a stemcurate {found}" if found else "not a stemcurate " + kind
            raise StemcurateError(
                f"{where}: exists and is {what}; refusing to overwrite it (choose another path or remove it)"
            )
    if kind in PARQUET_KINDS and path.suffix.lower() not in ("", ".parquet", ".pq"):
        raise StemcurateError(f"{where}: the {kind} is written as Parquet; give a .parquet path, not {path.suffix}")
    return path
