"""Which files ``pipelines separate`` takes as songs, and the folder each song's stems go to.

A song's folder is a function of its path and of what lies beside it on disk, never of which other
inputs are given; a folder holding a song's stems keeps them (its hidden :data:`MARKER` names the input).
"""

from __future__ import annotations

import os
from pathlib import Path

from curate.common.errors import StemcurateError
from curate.data.names import ignored_name

INPUT_EXTENSIONS = (".wav", ".flac", ".mp3", ".stem.mp4")
"""Files ``pipelines separate`` reads; of a ``.stem.mp4`` (MUSDB18), its mixture stream (stream 0)."""


def input_extension(path: Path) -> str | None:
    """The one of :data:`INPUT_EXTENSIONS` that ``path``'s name ends with (any case), else None."""
    name = path.name.lower()
    return next((e for e in sorted(INPUT_EXTENSIONS, key=len, reverse=True) if name.endswith(e)), None)


MARKER = ".stemcurate-separation"
"""The hidden file in each song folder that ``pipelines separate`` wrote (it names the input)."""


def find_inputs(path: str | Path, *, exclude: str | Path | None = None) -> list[Path]:
    """A wav/mp3/flac/stem.mp4 file, or the files of those types under a folder (recursive, through linked
    folders, sorted). Hidden files and folders (``.name``), those that file servers add (``#recycle``,
    ``@eaDir``) and the stems beside a track's ``mixture`` file (a MUSDB18-HQ track is one song) are left
    out, and so is the folder ``exclude`` (the output folder, when it lies inside the input folder: earlier
    results are not separated again)."""
    path = Path(path)
    if not path.exists():
        raise StemcurateError(f"{path}: no such file or folder")
    if path.is_file():
        if input_extension(path) is None:
            raise StemcurateError(f"{path}: unsupported file type (use {', '.join(INPUT_EXTENSIONS)})")
        return [path]
    skip = Path(exclude).resolve() if exclude is not None else None

    def wanted(p: Path) -> bool:  # a broken link too: it is reported as a file that cannot be read, not left out unsaid
        if not (p.is_file() or p.is_symlink() and not p.exists()) or input_extension(p) is None:
            return False
        if any(ignored_name(part) for part in p.relative_to(path).parts):  # hidden, recycle bins, NAS indexes
            return False
        if _beside_a_mixture(p):  # a track folder (MUSDB18-HQ): its mixture is the song, its stems are not
            return False
        return skip is None or not p.resolve().is_relative_to(skip)

    files = sorted(p for p in _walk(path) if wanted(p))
    if not files:
        raise StemcurateError(f"{path}: no {', '.join(INPUT_EXTENSIONS)} files in this folder")
    return files


def _song_name(path: Path) -> str:
    """``path``'s name without the input extension it ends with."""
    ext = input_extension(path)
    return path.name[: -len(ext)] if ext and len(path.name) > len(ext) else path.stem


def _is_mixture(path: Path) -> bool:
    """Whether ``path`` is a track's mixture file (``mixture.wav``, ``Mixture.WAV``...)."""
    return _song_name(path).lower() == "mixture" and input_extension(path) is not None


TRACK_STEMS = frozenset({"vocals", "bass", "drums", "other", "accompaniment", "instrumental", "guitar", "piano"})
"""Names of a track's stem files beside its mixture (MUSDB18-HQ's four, and common others)."""


def _beside_a_mixture(path: Path) -> bool:
    """Whether ``path`` is a stem of a track folder: a file named like a stem (:data:`TRACK_STEMS`, any case)
    in a folder that holds a ``mixture`` file of an input type."""
    if _song_name(path).lower() not in TRACK_STEMS:
        return False
    try:
        return any(_is_mixture(f) for f in path.parent.iterdir())
    except OSError:
        return False


def input_id(src: Path) -> str:
    """How a song folder's :data:`MARKER` names its input: the input's absolute path as given (a link to a
    file is an input of its own, not the file it points to)."""
    return os.path.abspath(src)


def input_root(path: Path) -> Path:
    """The folder that song folders are named relative to, for ``pipelines separate``'s input ``path``: the
    folder itself, a file's folder, or for a track's mixture file the folder above its track folder (the
    song is the track: ``OUT/<track>``, as when its parent folder is separated)."""
    if path.is_dir():
        return path
    return path.parent.parent if _is_mixture(path) else path.parent


def _neighbours(inputs: list[Path], root: Path) -> set[Path]:
    """The input files on disk that could take an input's song folder or one inside it, whether or not they
    are separated now: beside it, in the folder of its name, and beside its track folder (a mixture's)."""

    def files(folder: Path, deep: bool) -> list[Path]:
        if not folder.is_dir():
            return []
        found = _walk(folder) if deep else folder.iterdir()
        return [
            f
            for f in found
            if (f.is_file() or f.is_symlink())
            and input_extension(f)
            and not any(ignored_name(x) for x in f.relative_to(folder).parts)
            and not _beside_a_mixture(f)
        ]

    out: set[Path] = set()
    tracks = {src.parent for src in inputs if _is_mixture(src)}  # folders whose mixture is an input
    for parent in {src.parent for src in inputs}:
        out.update(files(parent, False))
        if parent in tracks:
            out.update(files(parent.parent, False))
            out.update(f for f in files(parent, True) if f.parent != parent)
    for src in inputs:
        out.update(files(src.parent / _song_name(src), True))
    return out


def _walk(folder: Path):
    """Every path under ``folder``, through linked folders too (as ``curate scan`` reads linked track
    folders), each real folder once: a link that loops back is not followed again."""
    seen = set()
    for top, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        for name in dirs + names:
            yield Path(top) / name


def output_folder(src: Path, root: Path, out_dir: Path) -> Path:
    """``OUT/<song>`` for a file input, ``OUT/<relative folders>/<song>`` for a file found under a folder;
    a ``<track>/mixture.wav`` (MUSDB18-HQ layout) is the song ``<track>``."""
    rel = src.relative_to(root) if src.is_relative_to(root) and src != root else Path(src.name)
    ext = input_extension(rel)
    rel = rel.with_name(rel.name[: -len(ext)]) if ext and len(rel.name) > len(ext) else rel.with_suffix("")
    if rel.name.lower() == "mixture":
        rel = rel.parent if rel.parent != Path(".") else Path(src.parent.name)
    return out_dir / rel


def _suffixed(folder: Path, src: Path) -> Path:
    """``folder`` with the part of ``src``'s name that :func:`output_folder` dropped: its extension as
    written (``song_mp3``, ``Take_WAV``, ``song_stem_mp4``), or ``mixture`` and its extension for a track's
    mixture file (``track_mixture_wav``)."""
    n = len(input_extension(src) or src.suffix)
    ext = src.name[-n:] if n else ""  # as written: Take.WAV -> _WAV
    dropped = src.name[:-n] if n and src.name[:-n].lower() == "mixture" else ""
    tail = "_".join(p for p in (dropped, ext.lstrip(".").replace(".", "_")) if p)
    return folder.with_name(f"{folder.name}_{tail}")


def marker_source(folder: Path) -> str | None:
    """The input recorded in ``folder``'s :data:`MARKER` (its absolute path), None without one."""
    try:
        text = (folder / MARKER).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    head = "separated by pipelines separate from "
    return next((line[len(head) :] for line in text.splitlines() if line.startswith(head)), "")


def _earlier(out_dir: Path) -> dict[str, Path]:
    """The song folders under ``out_dir`` by the input their :data:`MARKER` names."""
    found: dict[str, Path] = {}
    if out_dir.is_dir():
        for marker in sorted(out_dir.rglob(MARKER)):
            source = marker_source(marker.parent)
            if source:
                found.setdefault(source, marker.parent)
    return found


def output_folders(inputs: list[Path], root: Path, out_dir: Path) -> dict[Path, tuple[Path, str | None]]:
    """Each input's song folder, and why it is not :func:`output_folder`'s (None when it is).

    An input whose stems are already in ``out_dir`` (a song folder whose :data:`MARKER` names it, wherever it
    is) keeps that folder, whatever else is separated and from whichever input folder: adding, removing or
    reordering inputs never moves an existing input's stems. Otherwise an input gets :func:`output_folder`,
    unless another input file has that name, or would have its folder inside this one (``sub.wav`` beside
    ``sub/vocals.wav``), whether it is separated now or not (the files beside an input count: the name is a
    function of the input's path and what lies beside it, not of the other inputs given), or the folder
    holds another input's stems: then the suffix
    from its own name (:func:`_suffixed`: ``song_wav``, ``song_mp3``). :class:`StemcurateError` naming both
    inputs, before any work, when even that folder is taken or one song's folder would lie in another's."""
    out_dir = Path(out_dir)
    bare = {src: output_folder(src, root, out_dir) for src in inputs}
    count: dict[Path, int] = {}
    others = [output_folder(n, root, out_dir) for n in _neighbours(inputs, root) - set(inputs)]
    for f in [*bare.values(), *others]:  # the files beside an input count whether separated now or not
        for g in (f, *f.parents):  # a folder that holds another input's folder is shared too
            count[g] = count.get(g, 0) + 1
            if g == out_dir:
                break
    earlier = _earlier(out_dir)
    folders: dict[Path, tuple[Path, str | None]] = {}
    for src in inputs:
        b, s = bare[src], _suffixed(bare[src], src)
        own = input_id(src)
        held = marker_source(b)
        if own in earlier:
            f = earlier[own]
            folders[src] = (f, None if f == b else "its stems are there from an earlier run")
        elif count[b] > 1:
            folders[src] = (s, "another input has the same name")
        elif held is not None:
            folders[src] = (s, f"{b} holds the stems of {held or 'another input'}")
        elif any(b in f.parents for f in earlier.values()):  # stems beside a mixture that appeared since
            folders[src] = (s, f"{b} holds the song folders of other inputs")
        else:
            folders[src] = (b, None)
    chosen = {f: src for src, (f, _) in folders.items()}
    for src, (f, _) in folders.items():
        own, clash = input_id(src), None
        for g in (f, *f.parents):  # its own folder, then the folders it would lie in
            if g == out_dir or out_dir not in g.parents:
                break
            held = marker_source(g)
            if chosen.get(g, src) != src or (held is not None and held != own):
                clash = chosen.get(g) if chosen.get(g, src) != src else held or "another input"
                break
        if clash is not None:
            raise StemcurateError(
                f"{src}: its output folder {f} is also that of {clash}, or lies in it; separate one of them into "
                "another --output"
            )
    return folders
