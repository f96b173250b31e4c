"""Tells of a layout misread: MUSDB-layout "tracks" that are songs, one per folder or sorted by stem."""

from __future__ import annotations

from pathlib import Path

from curate.common.errors import StemcurateError
from curate.data.datasets import DEFAULT_STEMS, MIXTURE, Track


def refuse_misread_tracks(sub: Path, tracks: list[Track]) -> None:
    """:class:`StemcurateError` when the "tracks" are folders named like stems (``bass/``, ``vocals/``) whose
    files are not named like stems: songs sorted into one folder per stem (Music-Source-Separation-Training's
    second layout, ``<stem>/<song>.wav``), which read as tracks would make every song a stem; or when every
    track folder holds a single file named differently in each (``songA/songA.wav``): songs, each of which
    would be a stem of its own."""
    stem_like = {MIXTURE, *DEFAULT_STEMS}
    misread = [
        t.name
        for t in tracks
        if t.name.lower() in stem_like and not t.is_stem_mp4 and not any(s.lower() in stem_like for s in t.stems)
    ]
    real = [t for t in tracks if t.name not in misread]
    if len(misread) >= 2 and real:
        raise StemcurateError(
            f"{sub}: its folders {', '.join(sorted(misread))} are named like stems and hold songs, beside "
            f"{len(real)} track(s) of stems: move them out of {sub.name}/ (songs sorted by stem are scanned on "
            "their own, with --layout stem-folders)"
        )
    if len(misread) >= 2:
        raise StemcurateError(
            f"{sub}: its folders {', '.join(sorted(misread))} are named like stems and hold songs: this is the "
            f"stem-folders layout (<stem>/<song>.wav), not tracks; scan {sub} with --layout stem-folders"
        )
    folders = [t for t in tracks if not t.is_stem_mp4]
    names = [s for t in folders for s in t.stems]
    if len(folders) >= 2 and all(len(t.stems) == 1 for t in folders) and len(set(names)) == len(names):
        shown = ", ".join(f"{t.name}/{t.source(next(iter(t.stems))).path.name}" for t in folders[:2])
        raise StemcurateError(
            f"{sub}: each of its {len(folders)} track folders holds one audio file, named differently in each "
            f"({shown}...): songs, not tracks of stems (a track holds one file per stem: vocals.wav, bass.wav...); "
            "to separate songs use pipelines separate, for a folder per stem scan with --layout stem-folders"
        )


def one_file_tracks(tracks: list[Track]) -> str | None:
    """A warning when every track (two or more, MUSDB layout) holds a single file, with the same name not
    a standard stem's (``songA/song.wav``, ``songB/song.wav``): songs, perhaps, read as a one-stem dataset."""
    folders = [t for t in tracks if not t.is_stem_mp4 and t.layout == "musdb"]
    names = {s for t in folders for s in t.stems}
    if len(folders) < 2 or any(len(t.stems) != 1 for t in folders) or names & {MIXTURE, *DEFAULT_STEMS}:
        return None
    shown = ", ".join(sorted(names)[:3])
    return (
        f"every track holds a single file ({shown}): read as a dataset of that stem alone, with no siblings to "
        "measure bleed against; if these are songs, separate them with pipelines separate instead"
    )
