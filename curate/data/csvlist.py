"""MSST's dataset type 3: a CSV list of ``instrum,path`` rows, each file its own track.

Rows may be separated by commas (MSST), semicolons (Excel in many locales) or tabs; a header may be
capitalised; ``#`` lines are comments. Paths are absolute or relative to the CSV's folder; when no
relative path names a file from there but some do from the current folder (MSST's own convention: paths
relative to where it is run), they are read from the current folder. A list of which no file exists is
refused.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path, PureWindowsPath

from curate.common.errors import StemcurateError
from curate.data import audio as audio_io
from curate.data.datasets import StemFile, Track, is_stem_mp4
from curate.data.layouts import CSV, label_name

CSV_DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}
"""Field separators of a CSV list: MSST writes commas; Excel in many locales semicolons; tab-separated text."""


def _csv_delimiter(header: str) -> str:
    """The one of :data:`CSV_DELIMITERS` that splits ``header`` into fields holding ``instrum`` and ``path``
    (a comma when none does: the error then names the columns)."""
    for d in CSV_DELIMITERS:
        if {"instrum", "path"} <= {c.strip().strip('"').strip().lower() for c in header.split(d)}:
            return d
    return ","


def _listed_path(text: str, csv_file: Path, line: int, base: Path) -> Path:
    """The file that a CSV list's ``path`` field names: absolute, or relative to ``base``. A path
    written with Windows separators (``train\\song\\vocals.wav``) is read with them when no file has the name
    as written; a Windows drive or share (``C:\\...``, ``\\\\server\\...``) names no file here, which is said."""
    path = Path(text)
    where = path if path.is_absolute() else base / path
    if "\\" not in text or where.exists() or where.is_symlink():
        return Path(os.path.abspath(where))
    win = PureWindowsPath(text)
    if win.drive or win.root:
        raise StemcurateError(
            f"{csv_file}: line {line}: {text}: a Windows path, which names no file on this machine; give the "
            "paths relative to the CSV file's folder, or as they are here"
        )
    return Path(os.path.abspath(base / win.as_posix()))


def csv_tracks(csv_file: Path) -> list[Track]:
    """MSST type 3: ``instrum,path`` rows (or ``;``/tab separated, as Excel saves in many locales); the data
    root is the deepest folder holding every file (links are not followed: a listed link is a file where
    it is listed)."""
    try:
        with open(csv_file, newline="", encoding="utf-8-sig") as fh:
            lines = list(io.StringIO(fh.read(), newline=""))
        lines = ["\n" if line.lstrip().startswith("#") else line for line in lines]  # comments: read as blank
        head = next((i for i, line in enumerate(lines) if line.strip()), len(lines))
        delimiter = _csv_delimiter(lines[head] if head < len(lines) else "")
        names = next(csv.reader(lines[head : head + 1], delimiter=delimiter), [])
        names = [c.strip().lower() for c in names]  # Instrum;Path, as Excel users capitalise
        if not {"instrum", "path"} <= set(names):
            raise StemcurateError(f"{csv_file}: not an MSST list (needs the columns instrum,path)")
        reader = csv.DictReader(lines[head + 1 :], fieldnames=names, delimiter=delimiter)
        rows = []
        for row in reader:
            line = head + 1 + reader.line_num  # the file's line (blank lines and comments counted)
            if None in row:  # more fields than the header
                raise StemcurateError(
                    f"{csv_file}: line {line}: {len(names) + len(row[None])} fields, expected "
                    f"{len(names)} (quote a path holding a {CSV_DELIMITERS[delimiter]})"
                )
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
            other = next((d for d in CSV_DELIMITERS if d != delimiter and d in row["instrum"]), None)
            if not row["path"] and other:
                raise StemcurateError(
                    f"{csv_file}: line {line}: fields separated by a {CSV_DELIMITERS[other]}, the header by a "
                    f"{CSV_DELIMITERS[delimiter]}; use one separator throughout"
                )
            label = label_name(row["instrum"])
            if label is None or not row["path"]:
                raise StemcurateError(f"{csv_file}: line {line}: empty instrum or path")
            rows.append((label, row["path"], line))
    except UnicodeDecodeError as exc:
        raise StemcurateError(
            f"{csv_file}: not UTF-8 text (byte {exc.start}); save it as UTF-8 (Excel: 'CSV UTF-8')"
        ) from None
    except (OSError, csv.Error) as exc:
        raise StemcurateError(f"{csv_file}: cannot read the CSV list ({exc})") from None
    if not rows:
        return []
    rows = [(label, _listed_path(text, csv_file, line, _base(rows, csv_file))) for label, text, line in rows]
    bad = next((p for _, p in rows if is_stem_mp4(p.name) or p.suffix.lower() not in audio_io.AUDIO_EXTENSIONS), None)
    if bad is not None:
        raise StemcurateError(f"{csv_file}: {bad}: not a .wav or .flac file")
    root = Path(os.path.commonpath([str(p.parent) for _, p in rows]))
    tracks: dict[str, Track] = {}
    for label, path in rows:
        name = path.relative_to(root).as_posix()
        track = tracks.setdefault(name, Track(name, "train", root, {}, layout=CSV, listed_in=csv_file))
        track.stems.setdefault(label, StemFile(label, path))
    return list(tracks.values())


def _base(rows: list[tuple[str, str, int]], csv_file: Path) -> Path:
    """The folder relative paths are read from: the CSV's, unless none of them names a file from there
    and some do from the current folder."""
    relative = [Path(text) for _, text, _ in rows if not Path(text).is_absolute()]
    here, cwd = csv_file.parent, Path.cwd()
    if not relative or any((here / p).exists() for p in relative):
        return here
    return cwd if any((cwd / p).exists() for p in relative) else here
