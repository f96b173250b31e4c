"""How ``curate export`` writes track folders that every trainer's reader takes as they are.

Per track, into ``OUT/<split>/<track>/``:

* every stem of the export (the union over its tracks), one file each; a stem the track lacks is
  silence of the track's length (an MSST or demucs reader needs every stem file in every folder);
* one channel count in the whole export: mono files are written dual-mono when any file of the export
  is stereo (musdb and open-unmix stack the stems of a track, and batch tracks), and a file's channels
  past the second are left out, as every reader here does; one length and one sample rate per track;
* ``two_stems``: only that stem and ``other``, the sum of every other stem (the layout of MSST's
  vocals configs and UVR-style trainers);
* ``mixture`` (unless ``mixture=False``): the sum of the written stems. A track's own mixture file is
  not copied: where a stem was silenced, is missing, or the file is clipped, mono or coded apart from
  its stems, it is not their sum, and a mixture holding content that no target holds teaches a
  separator to drop it;
* ``audio_format`` ``wav`` or ``flac`` at ``bits`` 16, 24 or ``float`` (WAV only); ``source`` takes the
  deepest format among the track's files (16-bit for ``.stem.mp4``, 24-bit for float sources in FLAC).
  A track whose samples would pass full scale in a PCM format is scaled down as a whole, every file by
  the same gain (so the mixture stays their sum), and ``export.json`` records the gain.

In ``musdb-hq``, each region of a rejected fragment that no kept fragment covers is silenced with short
fades (:func:`curate.data.regions.region_mask`, the masking of ``pipelines train``); ``relabel`` silences
nothing and writes the files that hold each other's label under their true names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curate.common.atomic import atomic_dir
from curate.common.errors import StemcurateError
from curate.data import audio as audio_io
from curate.data.conform import to_channels
from curate.data.datasets import MIXTURE, Track, discover

AUDIO_FORMATS = ("wav", "flac")
BITS = ("source", "16", "24", "float")
OTHER = "other"
_SUBTYPES = {"16": "PCM_16", "24": "PCM_24", "float": "FLOAT"}
_DEPTH = {"16": 0, "24": 1, "float": 2}
HEADROOM = 10 ** (-0.1 / 20)
"""Peak a scaled-down PCM track is brought to: -0.1 dBFS."""


@dataclass(frozen=True)
class TrackFormat:
    """How the files of a track are written (see the module docstring)."""

    stems: tuple[str, ...]
    """Every stem of the export, in order; a track lacking one writes silence."""
    two_stems: str | None = None
    mixture: bool = True
    audio_format: str = "wav"
    bits: str = "source"
    channels: int | None = None
    """Channels of every file (None: each track's own, at most 2; see :func:`export_channels`)."""


def source_bits(track: Track) -> str:
    """The deepest sample format among the track's files (``"16"``, ``"24"`` or ``"float"``)."""
    if track.is_stem_mp4:
        return "16"  # AAC decoded: 16-bit holds all it has
    files = [f for s in (*track.stems.values(), track.mixture) if s is not None for f in s.files]
    return max((audio_io.bit_depth(f) for f in files), key=_DEPTH.__getitem__, default="float")


def conform(stems: dict[str, np.ndarray], fmt: TrackFormat) -> dict[str, np.ndarray]:
    """The track's stems as written: every stem of ``fmt.stems`` (silence for a missing one) at
    ``fmt.channels`` (None: the track's, at most 2: a file's first two channels are kept, as every reader
    here does) and one length, or ``{two_stems, "other"}``. ``stems``: float32 ``(channels, samples)``."""
    if not stems:
        raise ValueError("a track without stems")
    channels = fmt.channels or min(2, max(x.shape[0] for x in stems.values()))
    n = min(x.shape[1] for x in stems.values())
    out = {
        s: to_channels(stems[s][:, :n], channels) if s in stems else np.zeros((channels, n), np.float32)
        for s in fmt.stems
    }
    if fmt.two_stems is None:
        return out
    rest = np.zeros((channels, n), np.float32)
    for s, x in out.items():
        if s != fmt.two_stems:
            rest += x
    return {fmt.two_stems: out[fmt.two_stems], OTHER: rest}


def find_tracks(root: Path, layout: str, subsets) -> dict[tuple[str, str], Track]:
    """The dataset's tracks in ``subsets``, by ``(subset, name)``."""
    return {(t.subset, t.name): t for s in sorted(set(subsets)) for t in discover(root, subset=s, layout=layout)}


def write_tracks(
    into, tracks, every, kept, rejected, places, *, fmt, relabel, drop_tracks, fade_s, resuming, moves, progress
):
    """One folder per track of ``every`` (a manifest's rows, kept and rejected) at ``places[(subset,
    track)]`` (``OUT/<split>/<track>``), from ``tracks`` (:func:`find_tracks`): masked (``musdb-hq``) or
    with swapped files under their true names (``relabel``, ``moves``: ``{(subset, track): {file stem:
    true label}}``). ``into``: an :class:`curate.export.ExportResult`, whose ``written``, ``resumed``,
    ``skipped``, ``relabelled`` and ``gains`` lists are appended to as each track is done."""
    from curate.data.regions import region_mask

    res = into  # appended to track by track: an interrupted export keeps what it finished
    todo = sorted(set(zip(every["subset"], every["track"])))
    for subset, name in todo:
        dst = places[(subset, name)]
        if progress is not None:
            progress(name, len(todo))
        track = tracks.get((subset, name))
        if track is None:
            res.skipped.append((name, "not found in the dataset any more"))
            continue
        rej = rejected[(rejected["subset"] == subset) & (rejected["track"] == name)]
        if relabel:
            rej = rej.iloc[:0]  # a relabelled copy silences nothing
        if drop_tracks and len(rej):
            res.skipped.append((name, f"{len(rej)} rejected fragment(s)"))
            continue
        if resuming and dst.is_dir():
            res.resumed.append(dst)
            continue
        try:
            stems, sr = track.load_all()
        except StemcurateError as exc:  # a file no reader can use (curate.data.conform): the track is left out
            res.skipped.append((name, str(exc)))
            continue
        k = kept[(kept["subset"] == subset) & (kept["track"] == name)]
        fade = int(round(fade_s * sr))
        for stem, x in stems.items():
            r = rej[rej["stem"] == stem]
            if len(r) == 0:
                continue
            n = x.shape[1]
            cut = region_mask(r["start"].to_numpy(), r["end"].to_numpy(), n, fade)
            keep_s = k[k["stem"] == stem]
            keep = region_mask(keep_s["start"].to_numpy(), keep_s["end"].to_numpy(), n, fade)
            stems[stem] = x * np.maximum(1.0 - cut, keep)[None]
        move = moves.get((subset, name), {})
        for a, b in sorted(move.items()):
            res.relabelled.append(dict(subset=subset, track=name, stem=a, written_as=b))
        out = conform({move.get(s, s): x for s, x in stems.items()}, fmt)
        mix = sum(out.values()) if fmt.mixture else None
        write_folder(dst, out, mix, sr, fmt, source_bits(track), res)  # a write that fails (a full disk) stops all
        res.written.append(dst)


def export_channels(tracks) -> int:
    """The channel count of an export: 2 when any file of ``tracks`` (:class:`Track` objects) has two or
    more channels (a ``.stem.mp4`` is stereo), else 1. Readers batch examples of several tracks, so one
    mono track beside stereo ones is written dual-mono too."""
    for t in tracks:
        if t.is_stem_mp4:
            return 2
        for f in (f for s in t.stems.values() for f in s.files):
            try:
                if audio_io.info(f).channels >= 2:
                    return 2
            except StemcurateError:
                continue  # the track is left out when it is read, with why
    return 1


def write_folder(dst: Path, out, mix, sr: int, fmt: TrackFormat, source: str, res) -> None:
    """Write ``out`` (``{stem: (channels, samples)}``) and ``mix`` (or None) into the folder ``dst`` at
    ``fmt``'s format and depth (``source``: the depth ``fmt.bits="source"`` stands for), scaled down as a
    whole where a PCM depth would clip (the gain appended to ``res.gains``, ``res`` as in :func:`write_tracks`)."""
    bits = source if fmt.bits == "source" else fmt.bits
    if fmt.audio_format == "flac" and bits == "float":
        bits = "24"  # FLAC holds no float samples
    files = {**out, **({MIXTURE: mix} if mix is not None else {})}
    gain = 1.0
    if bits != "float":
        peak = max(float(np.abs(x).max(initial=0.0)) for x in files.values())
        if peak > HEADROOM:
            gain = HEADROOM / peak
            res.gains.append(dict(split=dst.parent.name, track=dst.name, gain_db=round(20 * float(np.log10(gain)), 2)))
    with atomic_dir(dst) as work:
        for stem, x in files.items():
            y = x * np.float32(gain) if gain != 1.0 else x
            audio_io.write(work / f"{stem}.{fmt.audio_format}", y, sr, subtype=_SUBTYPES[bits])


def decode_listed(rows, tracks, out: Path, split: str, fmt: TrackFormat, *, resuming: bool, into) -> list:
    """``msst-csv`` of ``.stem.mp4`` sources, which hold no file per stem: the listed stems of each such
    track decoded once into ``out/<split>/<track>/<stem>.<ext>`` (one gain per track, as
    :func:`write_folder`), and ``rows`` (``(stem, path)``) with those files in place of the ``.stem.mp4``.
    ``tracks``: ``{resolved .stem.mp4 path: Track}``."""
    by_file: dict[str, list[str]] = {}
    for stem, path in rows:
        if path in tracks:
            by_file.setdefault(path, []).append(stem)
    where = {}
    for path, stems in sorted(by_file.items()):
        track = tracks[path]
        dst = out / split / track.name
        if resuming and dst.is_dir():
            into.resumed.append(dst)
        else:
            loaded = {s: track.load(s) for s in stems}
            sr = next(iter(loaded.values()))[1]
            write_folder(dst, {s: x for s, (x, _) in loaded.items()}, None, sr, fmt, "16", into)
            into.written.append(dst)
        where.update({(s, path): str((dst / f"{s}.{fmt.audio_format}").resolve()) for s in stems})
    return sorted((stem, where.get((stem, path), path)) for stem, path in rows)
