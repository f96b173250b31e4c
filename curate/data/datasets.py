"""Discover tracks and stems in MUSDB18 (``.stem.mp4``), MUSDB18-HQ and any folder in that layout; the
other layouts (MoisesDB, MedleyDB, MSST stem folders and CSV lists) are read by :mod:`curate.data.layouts`.

Layouts under ``ROOT/<subset>/`` (subset ``train`` or ``test``):

* folder layout (MUSDB18-HQ): ``<track>/{mixture,vocals,bass,drums,other}.wav`` (or ``.flac``);
  any other ``<name>.wav`` in a track folder is a stem called ``<name>`` (guitar, piano, ...).
* stems layout (MUSDB18): ``<track>.stem.mp4`` files, read through ``musdb``/``stempeg``
  (needs ``ffmpeg``); streams 0-4 are mixture, drums, bass, other, vocals.

Audio comes back float32 ``(channels, samples)`` at the file's own rate.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from curate.common.errors import StemcurateError, as_path
from curate.data import audio as audio_io
from curate.data.decoded import read_stream, require_ffmpeg
from curate.data.names import hidden, ignored_name
from curate.data.schema import row_parts

DEFAULT_STEMS = ("vocals", "bass", "drums", "other")
MIXTURE = "mixture"
SUBSETS = ("train", "test")
STEM_MP4 = ".stem.mp4"


def is_stem_mp4(path: str | Path) -> bool:
    """Whether ``path``'s name ends with ``.stem.mp4`` in any case (``Song.STEM.MP4`` too)."""
    return str(path).lower().endswith(STEM_MP4)


def stem_mp4_track(path: Path) -> str:
    """The track name of a ``.stem.mp4`` file: its name without that ending (in whatever case)."""
    return path.name[: -len(STEM_MP4)]


MUSDB_STREAMS = {"mixture": 0, "drums": 1, "bass": 2, "other": 3, "vocals": 4}
"""Stream index of each source inside a MUSDB18 ``.stem.mp4`` file (musdb's ``mus.yaml``)."""


@dataclass(frozen=True)
class StemFile:
    """One source of a track: a wav/flac file, one stream of a ``.stem.mp4``, or the sum of several
    wav/flac files (``parts``: MoisesDB's source files of a stem, MedleyDB's stems of one label); then
    ``path`` is a name for the sum, ``<track folder>/<stem>``, not a file."""

    name: str
    path: Path
    stream: int | None = None
    parts: tuple[Path, ...] = ()

    @property
    def files(self) -> tuple[Path, ...]:
        """The files read for this source."""
        return self.parts or (self.path,)

    def relative_to(self, root: Path) -> str:
        """Path relative to the data root, POSIX separators (as stored in manifests)."""
        return Path(os.path.relpath(self.path, root)).as_posix()

    def parts_relative_to(self, root: Path) -> list[str] | None:
        """``parts`` relative to the data root (the manifest's ``parts`` column), None for a single file."""
        return [Path(os.path.relpath(p, root)).as_posix() for p in self.parts] if self.parts else None


@dataclass
class Track:
    """A track of a dataset: its mixture (if present) and stems, by name."""

    name: str
    subset: str
    root: Path
    stems: dict[str, StemFile]
    mixture: StemFile | None = None
    ignored: list[Path] = field(default_factory=list)
    """Second files of a stem (``bass.flac`` beside ``bass.wav``): the ``.wav`` is read, these are not."""
    bleed: dict[str, bool] = field(default_factory=dict)
    """The dataset's own bleed flag of each stem, where it has one (MedleyDB ``has_bleed``, MoisesDB ``hasBleed``)."""
    notes: list[tuple[str, str, str]] = field(default_factory=list)
    """``(stem, check, detail)`` warnings the reader found in the track's metadata (an unknown label, a
    missing mixture), reported by the scan."""
    layout: str = "musdb"
    """The layout it was read in (:data:`curate.data.layouts.LAYOUTS`)."""
    listed_in: Path | None = None
    """The metadata file that lists the track's files (MoisesDB ``data.json``, MedleyDB YAML, a CSV list):
    a listed file that is not there is reported missing."""
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def is_stem_mp4(self) -> bool:
        return any(s.stream is not None for s in self.stems.values())

    def source(self, name: str) -> StemFile:
        if name == MIXTURE and self.mixture is not None:
            return self.mixture
        if name not in self.stems:
            raise StemcurateError(f"track '{self.name}': no stem '{name}' (has {', '.join(self.stems)})")
        return self.stems[name]

    def load(self, name: str, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, int]:
        """Samples ``[start, stop)`` of stem ``name`` (or ``mixture``): float32 ``(channels, samples)``, Hz."""
        return load_source(self.source(name), start, stop)

    def load_all(self, names: list[str] | None = None) -> tuple[dict[str, np.ndarray], int]:
        """All named stems (default: every stem), read to the shortest when their lengths are up to a second
        apart (:mod:`curate.data.conform`). :class:`StemcurateError` naming the file for one that does not
        decode, holds unusable samples (NaN/inf, far above full scale) or has a sample rate outside the
        range read, naming the track when rates differ or lengths differ more."""
        from curate.data.conform import audio_problem, common_length

        names = list(self.stems) if names is None else names
        out, rates = {}, {}
        for n in names:
            out[n], rates[n] = self.load(n)
            unusable = audio_problem(out[n], rates[n])
            if unusable:
                raise StemcurateError(f"{self.source(n).path}: {unusable[1]}")
        if len(set(rates.values())) > 1:
            detail = ", ".join(f"{n} {r} Hz" for n, r in rates.items())
            raise StemcurateError(f"track '{self.name}': stems have different sample rates ({detail})")
        if not out:
            return out, 0
        rate = next(iter(rates.values()))
        n = common_length({k: a.shape[1] for k, a in out.items()}, rate, where=f"track '{self.name}'")
        return {k: a[:, :n] for k, a in out.items()}, rate


def load_source(src: StemFile, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, int]:
    """Read ``[start, stop)`` samples of one source: float32 ``(channels, samples)`` and its rate in Hz."""
    if src.parts:
        return _sum_parts(src, start, stop)
    if src.stream is None:
        return audio_io.read(src.path, start, stop)
    return read_stream(src.path, src.stream, start, stop)  # decoded once into a cache (curate.data.decoded)


def _sum_parts(src: StemFile, start: int, stop: int | None) -> tuple[np.ndarray, int]:
    """The sum of a source's ``parts``, with the rules of a track's files (:mod:`curate.data.conform`): one
    rate, lengths up to a second apart read to the shortest, a mono part added to both channels."""
    from curate.data.conform import common_length, to_channels

    arrays, rates = {}, {}
    for p in src.parts:
        arrays[p], rates[p] = audio_io.read(p, start, stop)
    if len(set(rates.values())) > 1:
        detail = ", ".join(f"{p.name} {r} Hz" for p, r in rates.items())
        raise StemcurateError(f"{src.path}: the files of stem '{src.name}' have different sample rates ({detail})")
    rate = next(iter(rates.values()))
    lengths = {f"{p.parent.name}/{p.name}": a.shape[1] for p, a in arrays.items()}
    n = min(lengths.values()) if stop is not None else common_length(lengths, rate, where=str(src.path))
    channels = max(a.shape[0] for a in arrays.values())
    total = np.zeros((channels, n), np.float32)
    for a in arrays.values():
        total += to_channels(a[:, :n], channels)
    return total, rate


def load_segment(
    root: str | Path,
    rel_path: str,
    stem: str,
    start: int,
    stop: int | None,
    *,
    need: int = 0,
    parts: list[str] | tuple[str, ...] | np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Read a manifest row's audio: ``rel_path`` under ``root``; ``stem`` picks the stream of a ``.stem.mp4``;
    a row with ``parts`` (files under ``root``) reads their sum.

    ``need``: the samples from ``start`` that the manifest says the file holds (its fragments'
    ends); :class:`StemcurateError` naming the file when it holds fewer (it changed since the scan)."""
    path = Path(root) / rel_path
    parts = row_parts(parts)
    stream = MUSDB_STREAMS.get(stem) if is_stem_mp4(path.name) and parts is None else None
    if is_stem_mp4(path.name) and stream is None and parts is None:
        raise StemcurateError(f"{path}: no stream for stem '{stem}' in a MUSDB18 .stem.mp4")
    src = StemFile(stem, path, stream, tuple(Path(root) / p for p in parts or ()))
    x, sr = load_source(src, start, stop)
    if x.shape[1] < need:
        raise file_changed(path, start + x.shape[1], start + need)
    return x, sr


def file_changed(path: str | Path, holds: int, expected: int) -> StemcurateError:
    """The error for a file shorter than its manifest rows: ``holds`` samples, rows up to ``expected``."""
    return StemcurateError(
        f"{path}: holds {holds} samples, the manifest has fragments up to sample {expected}; "
        "the file changed since the scan, re-run curate scan"
    )


def default_root() -> Path | None:
    """The ``MUSDB_DIR`` environment variable, as musdb and open-unmix use it."""
    value = os.environ.get("MUSDB_DIR")
    return Path(value) if value else None


def discover(root: str | Path | None = None, *, subset: str = "train", layout: str | None = None) -> list[Track]:
    """Find all tracks of ``subset`` under ``root`` (default ``$MUSDB_DIR``), sorted by name.

    ``layout``: one of :data:`curate.data.layouts.LAYOUTS`, or None to detect it
    (:func:`curate.data.layouts.detect_layout`). Every stem file present is listed; selecting stems is
    the caller's job. Raises :class:`StemcurateError` for a missing/empty root or when no track is found.
    """
    from curate.data import layouts

    if root is None:
        root = default_root()
        if root is None:
            raise StemcurateError("no data folder given and MUSDB_DIR is not set")
    root = as_path(root, "root")
    if subset not in SUBSETS:
        raise StemcurateError(f"--subset {subset}: unknown subset (use {' or '.join(SUBSETS)})")
    layout = layouts.resolve_layout(root, layout)
    if layout not in layouts.TRACK_FOLDERS:
        return layouts.discover_other(root, layout, subset=subset)
    if not root.exists():
        raise StemcurateError(f"{root}: data folder does not exist")
    if not root.is_dir():
        raise StemcurateError(f"{root}: not a folder")
    if not any(root.iterdir()):
        raise StemcurateError(f"{root}: data folder is empty")
    if layout == layouts.MSST and subset != "train":
        raise StemcurateError(f"{root}: an msst dataset has no subsets, every track is read as 'train'")
    sub = root if layout == layouts.MSST else root / subset
    if not sub.is_dir():
        raise StemcurateError(
            f"{root}: no '{subset}' folder (expected {subset}/<track>/{{mixture,vocals,bass,drums,other}}.wav "
            f"or {subset}/<track>.stem.mp4)"
        )
    tracks = _discover_folders(root, sub, subset, layout) + _discover_stem_mp4(root, sub, subset)
    if not tracks:
        raise StemcurateError(
            f"{sub}: no tracks found (expected <track>/{{mixture,vocals,bass,drums,other}}.wav|.flac "
            f"or <track>.stem.mp4)"
        )
    from curate.data.tells import refuse_misread_tracks

    refuse_misread_tracks(sub, tracks)
    names = [t.name for t in tracks]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise StemcurateError(f"{sub}: track '{dupes[0]}' appears both as a folder and as a .stem.mp4")
    return sorted(tracks, key=lambda t: t.name)


def not_tracks(root: str | Path, *, subset: str = "train", layout: str | None = None) -> list[tuple[Path, str]]:
    """Entries of ``root/subset`` that :func:`discover` does not read as tracks, with why: a folder with
    no audio of its own but tracks inside (nested: move them up to ``subset/``), other folders and
    files. Hidden entries are left out (ignored everywhere). Other layouts:
    :func:`curate.data.layouts.not_tracks_other`."""
    from curate.data import layouts

    layout = layouts.resolve_layout(Path(root), layout)
    if layout not in layouts.TRACK_FOLDERS:
        return layouts.not_tracks_other(Path(root), layout)
    sub = Path(root) if layout == layouts.MSST else Path(root) / subset
    out = []
    if not sub.is_dir():
        return out
    for p in sorted(sub.iterdir()):
        if hidden(p) or (p.is_file() and is_stem_mp4(p.name)):
            continue
        if p.is_dir():
            if any(
                f.is_file() and f.suffix.lower() in audio_io.AUDIO_EXTENSIONS and not hidden(f) for f in p.iterdir()
            ):
                continue
            nested = [
                f
                for f in p.rglob("*")
                if f.is_file()
                and not any(ignored_name(x) for x in f.relative_to(p).parts)
                and (is_stem_mp4(f.name) or f.suffix.lower() in audio_io.AUDIO_EXTENSIONS)
            ]
            why = (
                f"nested: holds {len(nested)} audio file(s) in sub-folders; tracks must sit directly in {subset}/"
                if nested
                else "a folder without audio files"
            )
            out.append((p, why))
        else:
            out.append((p, "not a track (tracks are folders of stems or .stem.mp4 files)"))
    return out


def _discover_folders(root: Path, sub: Path, subset: str, layout: str) -> list[Track]:
    tracks = []
    for folder in sorted(p for p in sub.iterdir() if p.is_dir() and not hidden(p)):
        files: dict[str, Path] = {}
        ignored: list[Path] = []
        for f in sorted(folder.iterdir()):
            ext = f.suffix.lower()
            # a broken link is listed too: the scan then names it instead of calling the stem missing
            if (f.is_file() or f.is_symlink()) and ext in audio_io.AUDIO_EXTENSIONS and not hidden(f):
                if f.stem not in files:
                    files[f.stem] = f
                elif ext == ".wav" and files[f.stem].suffix.lower() != ".wav":  # the .wav of a stem is read
                    ignored.append(files[f.stem])
                    files[f.stem] = f
                else:
                    ignored.append(f)
        if not files:
            continue
        mixture = files.pop(MIXTURE, None)
        stems = {n: StemFile(n, p) for n, p in files.items()}
        mix = StemFile(MIXTURE, mixture) if mixture else None
        tracks.append(Track(folder.name, subset, root, stems, mix, sorted(ignored), layout=layout))
    return tracks


def _discover_stem_mp4(root: Path, sub: Path, subset: str) -> list[Track]:
    """``<track>.stem.mp4`` files directly in ``sub`` (not hidden), with MUSDB18's stream order."""
    files = sorted(p for p in sub.iterdir() if is_stem_mp4(p.name) and p.is_file() and not hidden(p))
    if not files:
        return []
    require_ffmpeg(files[0])
    stems = [n for n in DEFAULT_STEMS if n in MUSDB_STREAMS]
    return [
        Track(
            stem_mp4_track(p),
            subset,
            root,
            {n: StemFile(n, p, MUSDB_STREAMS[n]) for n in stems},
            StemFile(MIXTURE, p, MUSDB_STREAMS[MIXTURE]),
        )
        for p in files
    ]


def copy_subsets(src: str | Path, dst: str | Path, *, skip) -> None:
    """Copy the subsets of ``src`` that are not in ``skip`` (and not yet in ``dst``) unchanged, for a
    copy of a dataset that rewrites only some subsets (``curate corrupt``, ``curate repair``)."""
    src, dst = Path(src), Path(dst)
    for subset in SUBSETS:
        if subset not in skip and (src / subset).is_dir() and not (dst / subset).exists():
            shutil.copytree(src / subset, dst / subset)


def copy_track(track: Track, dst_subset: str | Path) -> None:
    """Copy a track's files unchanged into ``dst_subset`` (a subset folder of another data root): a
    folder track as ``dst_subset/<name>/``, a ``.stem.mp4`` as the same file. A track of another layout
    (MoisesDB, MedleyDB: :mod:`curate.data.layouts`) is written as a MUSDB18-HQ folder, each stem as
    read (summed), float32 WAV; a file that cannot be read raises :class:`StemcurateError`."""
    dst_subset = Path(dst_subset)
    if track.listed_in is not None:
        folder = dst_subset / track.name
        folder.mkdir(parents=True, exist_ok=True)
        for n in [*track.stems, *([MIXTURE] if track.mixture is not None else [])]:
            x, sr = track.load(n)
            audio_io.write(folder / f"{n}.wav", x, sr, subtype="FLOAT")
        return
    files = {track.source(n).path for n in [*track.stems, *([MIXTURE] if track.mixture is not None else [])]}
    for f in sorted(files):
        target = dst_subset / f.name if is_stem_mp4(f.name) else dst_subset / track.name / f.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, target)


def available_stems(tracks: list[Track]) -> list[str]:
    """Stem names present in at least one track, in order of first appearance."""
    seen: dict[str, None] = {}
    for t in tracks:
        for n in t.stems:
            seen.setdefault(n, None)
    return list(seen)
