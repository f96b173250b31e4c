"""Write a MUSDB-layout dataset (``curate synth``'s, or any) as a miniature copy of another layout's
real structure (:mod:`curate.data.layouts`): for tests, and for trying each reader on known audio.

* ``moisesdb``: ``<track-id>/data.json`` and stem folders; ``other`` becomes two source files,
  ``guitar/`` and ``piano/``, whose sum is the original (complementary slow gains), so that
  ``moisesdb`` reads back the 4 stems and ``moisesdb-fine`` reads vocals, bass, drums, guitar, piano.
* ``medleydb``: ``<Track>/<Track>_METADATA.yaml``, ``<Track>_STEMS/<Track>_STEM_NN.wav``, ``<Track>_MIX.wav``;
  instruments ``female singer``, ``electric bass``, ``drum set``, and ``other`` split into ``piano`` and
  ``distorted electric guitar``; ``has_bleed`` as given.
* ``stem-folders``: ``<stem>/<track>.wav``.
* ``csv``: ``files/<stem>/<track>.wav`` and ``list.csv`` (``instrum,path``, absolute paths); returns the CSV.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np

from curate.common.atomic import atomic_dir, write_text
from curate.common.errors import StemcurateError
from curate.data import audio as audio_io
from curate.data.datasets import MIXTURE, discover
from curate.data.layouts import CSV, MEDLEYDB, MOISESDB, STEM_FOLDERS

WRITABLE = (MOISESDB, MEDLEYDB, STEM_FOLDERS, CSV)
MEDLEYDB_NAMES = {"vocals": "female singer", "bass": "electric bass", "drums": "drum set"}
SPLIT_PERIOD_S = 4.0
"""Period of the complementary gains that split ``other`` into two files, seconds."""


def _split(x: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Two signals that sum to ``x`` ``(channels, samples)``: ``x * w`` and ``x - x * w``, ``w`` a slow
    sine in [0, 1]."""
    t = np.arange(x.shape[1]) / sample_rate
    a = (x * (0.5 + 0.5 * np.sin(2 * np.pi * t / SPLIT_PERIOD_S))).astype(np.float32)
    return a, (x - a).astype(np.float32)


def write_layout(src: str | Path, dst: str | Path, layout: str, *, has_bleed: bool = False) -> Path:
    """Write the ``train`` tracks of the MUSDB-layout dataset ``src`` to ``dst`` in ``layout`` (one of
    :data:`WRITABLE`), float32 WAV at the source rate. Returns what ``curate scan`` takes: ``dst``, or the
    CSV file for ``csv``. :class:`StemcurateError` for another layout or an existing ``dst``."""
    if layout not in WRITABLE:
        raise StemcurateError(f"layout {layout!r}: one of {', '.join(WRITABLE)}")
    dst = Path(dst)
    if dst.exists():
        raise StemcurateError(f"{dst}: exists; write the copy to a new folder")
    tracks = discover(src, subset="train", layout="musdb")
    rows = []
    with atomic_dir(dst) as work:
        for track in tracks:
            stems, sr = track.load_all()
            if layout == MOISESDB:
                _moisesdb(work, track.name, stems, sr, has_bleed)
            elif layout == MEDLEYDB:
                mix = track.load(MIXTURE)[0] if track.mixture is not None else sum(stems.values())
                _medleydb(work, track.name, stems, mix[:, : next(iter(stems.values())).shape[1]], sr, has_bleed)
            else:
                folder = work if layout == STEM_FOLDERS else work / "files"
                for stem, x in stems.items():
                    audio_io.write(folder / stem / f"{track.name}.wav", x, sr, subtype="FLOAT")
                    rows.append((stem, (dst / "files" / stem / f"{track.name}.wav").resolve()))
        if layout == CSV:
            write_text(work / "list.csv", "instrum,path\n" + "".join(f"{s},{p}\n" for s, p in rows))
    return dst / "list.csv" if layout == CSV else dst


def _moisesdb(work: Path, name: str, stems: dict[str, np.ndarray], sr: int, has_bleed: bool) -> None:
    folder = work / str(uuid.uuid5(uuid.NAMESPACE_URL, name))
    entries = []
    for stem, x in stems.items():
        pieces = dict(zip(("guitar", "piano"), _split(x, sr))) if stem == "other" else {stem: x}
        for label, audio in pieces.items():
            sid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{name}/{label}"))
            audio_io.write(folder / label / f"{sid}.wav", audio, sr, subtype="FLOAT")
            track = {"id": sid, "trackType": label, "extension": "wav", "hasBleed": has_bleed}
            entries.append({"stemName": label, "id": sid, "tracks": [track]})
    write_text(folder / "data.json", json.dumps({"song": name, "artist": "curate synth", "stems": entries}, indent=1))


def _medleydb(work: Path, name: str, stems: dict, mix: np.ndarray, sr: int, has_bleed: bool) -> None:
    folder = work / name
    pieces = []
    for stem, x in stems.items():
        if stem == "other":
            pieces += list(zip(("piano", "distorted electric guitar"), _split(x, sr)))
        else:
            pieces.append((MEDLEYDB_NAMES.get(stem, stem), x))
    lines = [
        f"artist: curate synth\ntitle: {name}\nhas_bleed: {'yes' if has_bleed else 'no'}",
        f"mix_filename: {name}_MIX.wav\nstem_dir: {name}_STEMS\nstems:",
    ]
    for i, (instrument, x) in enumerate(pieces, start=1):
        file = f"{name}_STEM_{i:02d}.wav"
        audio_io.write(folder / f"{name}_STEMS" / file, x, sr, subtype="FLOAT")
        lines.append(f"  S{i:02d}:\n    component: ''\n    filename: {file}\n    instrument: {instrument}")
    audio_io.write(folder / f"{name}_MIX.wav", mix, sr, subtype="FLOAT")
    write_text(folder / f"{name}_METADATA.yaml", "\n".join(lines) + "\n")
