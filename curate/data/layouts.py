"""Dataset layouts besides MUSDB18 / MUSDB18-HQ: MoisesDB, MedleyDB, MSST stem folders and CSV lists.

``curate scan ROOT`` detects the layout (:func:`detect_layout`) or takes ``--layout NAME``:

* ``musdb``: ``ROOT/{train,test}/<track>/<stem>.wav|.flac`` or ``ROOT/{train,test}/<track>.stem.mp4``
  (:mod:`curate.data.datasets`; track folders without a mixture file, as the SDX23 label-noise and
  bleeding sets ship them, are read the same way).
* ``msst`` (MSST dataset type 1, MUSDB18-HQ's track folders without the subset folder):
  ``ROOT/<track>/<stem>.wav|.flac``, every track read as ``train``.
* ``moisesdb``: ``ROOT/<track-id>/data.json`` and one folder per stem (``bass``, ``bowed_strings``,
  ``drums``, ``guitar``, ``other``, ``other_keys``, ``other_plucked``, ``percussion``, ``piano``,
  ``vocals``, ``wind``) of source files listed in ``data.json``; a stem is the sum of its files.
  Labels are mapped to the 4 standard stems as MoisesDB's own ``mix_4_stems`` does
  (:data:`MOISESDB_TO_STANDARD`: vocals, bass and drums kept, the other 8 summed into ``other``;
  percussion is ``other`` there). ``moisesdb-fine`` keeps the 11 labels.
* ``medleydb``: ``ROOT/<Track>/<Track>_METADATA.yaml`` naming each stem's instrument and file in
  ``<Track>_STEMS/`` (``<Track>_STEM_NN.wav``), and ``<Track>_MIX.wav``. Instruments map to the 4
  standard stems by :func:`medleydb_stem`; the stems of one label are summed. ``medleydb-fine`` keeps
  the instrument names as labels (``male singer``, ``electric bass``...). The YAML's ``has_bleed`` goes
  to the manifest's ``dataset_bleed`` column.
* ``stem-folders`` (MSST dataset type 2): ``ROOT/<stem>/<file>.wav|.flac``, each file its own track.
* ``csv`` (MSST dataset type 3): ROOT is a CSV file with columns ``instrum,path`` (paths absolute or
  relative to the CSV's folder, else to the current folder: :mod:`curate.data.csvlist`); each file its
  own track (a file listed under two labels is one track with both).

The last two have no track structure: a file has no siblings, so only the per-stem evidence applies
(instrument classifier, reference pool, pretrained embedding); there is no bleed measure. The
layouts other than ``musdb`` have no subsets: every track is read as ``train``. A dataset whose
metadata or list names files of which none exists is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

from curate.common.errors import StemcurateError
from curate.data import audio as audio_io
from curate.data.datasets import DEFAULT_STEMS, MIXTURE, StemFile, Track
from curate.data.names import hidden

MUSDB = "musdb"
MOISESDB = "moisesdb"
MOISESDB_FINE = "moisesdb-fine"
MEDLEYDB = "medleydb"
MEDLEYDB_FINE = "medleydb-fine"
STEM_FOLDERS = "stem-folders"
CSV = "csv"
MSST = "msst"
LAYOUTS = (MUSDB, MSST, MOISESDB, MOISESDB_FINE, MEDLEYDB, MEDLEYDB_FINE, STEM_FOLDERS, CSV)
TRACK_FOLDERS = (MUSDB, MSST)
"""The layouts read by :func:`curate.data.datasets.discover` itself: folders of a track's stem files."""
WITHOUT_SIBLINGS = (STEM_FOLDERS, CSV)
"""Layouts whose files have no siblings: no bleed measure, no structural evidence."""

MOISESDB_STEMS = (
    "bass",
    "bowed_strings",
    "drums",
    "guitar",
    "other",
    "other_keys",
    "other_plucked",
    "percussion",
    "piano",
    "vocals",
    "wind",
)
"""MoisesDB's 11 stem labels (its ``stemName`` values and folder names)."""
MOISESDB_TO_STANDARD = {s: s if s in ("vocals", "bass", "drums") else "other" for s in MOISESDB_STEMS}
"""MoisesDB label -> standard stem, as ``moisesdb.defaults.mix_4_stems``."""

MEDLEYDB_VOCALS = frozenset(
    {"male singer", "female singer", "male rapper", "female rapper", "vocalists", "choir", "male speaker",
     "female speaker", "beatboxing"}
)  # fmt: skip
MEDLEYDB_BASS = frozenset({"electric bass", "double bass"})
MEDLEYDB_DRUMS = frozenset(
    {"drum set", "drum machine", "auxiliary percussion", "percussion", "kick drum", "snare drum", "bass drum",
     "toms", "cymbal", "hi-hat", "tambourine", "shaker", "cowbell", "claps", "bongo", "conga", "tabla",
     "darbuka", "doumbek", "cabasa", "guiro", "maracas", "timbales", "gong", "castanet", "triangle"}
)  # fmt: skip


def medleydb_stem(instrument: str) -> str:
    """MedleyDB instrument label -> standard stem: singers, rappers, vocalists, choir, speakers and
    beatboxing -> ``vocals``; electric and double bass -> ``bass``; drum set, drum machine and the
    unpitched percussion labels (:data:`MEDLEYDB_DRUMS`) -> ``drums``; everything else -> ``other``."""
    name = instrument.strip().lower()
    if name in MEDLEYDB_VOCALS or "singer" in name or "vocalist" in name:
        return "vocals"
    if name in MEDLEYDB_BASS:
        return "bass"
    if name in MEDLEYDB_DRUMS:
        return "drums"
    return "other"


def _dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not hidden(p))


def _audio_files(folder: Path) -> list[Path]:
    return sorted(
        f
        for f in folder.iterdir()
        if (f.is_file() or f.is_symlink()) and f.suffix.lower() in audio_io.AUDIO_EXTENSIONS and not hidden(f)
    )


TRACK_LIKE = frozenset({MIXTURE, *DEFAULT_STEMS})
"""File names (any case, no extension) of a track's stems and mixture."""


def _holds_stems(files: list[Path]) -> bool:
    """Two or more of ``files`` are named like a track's stems: a track folder, not one stem's songs."""
    return sum(f.stem.lower() in TRACK_LIKE for f in files) >= 2


def explain_layout(root: Path, layout: str | None = None) -> tuple[str, str]:
    """The layout of ``root`` and why, in a line for a person: ``layout`` checked against :data:`LAYOUTS`
    when given, else detected: ``csv`` for a ``.csv`` file; ``musdb`` when it has a ``train`` or ``test``
    folder; ``moisesdb`` when a folder in it has a ``data.json``; ``medleydb`` when one has a
    ``*_METADATA.yaml`` or ``*_STEMS`` folder; ``stem-folders`` when its folders hold audio files that are
    not named like a track's stems (``mixture``, ``vocals``...); else ``musdb`` (whose errors say what
    was expected). :class:`StemcurateError` for an unknown ``layout`` or a single MoisesDB/MedleyDB track."""
    if layout is not None:
        if layout not in LAYOUTS:
            raise StemcurateError(f"--layout {layout}: unknown layout (use one of {', '.join(LAYOUTS)})")
        return layout, f"as given; {_EXPECTED.get(layout, MUSDB_EXPECTED)}"
    if root.suffix.lower() == ".csv" and not root.is_dir():
        return CSV, f"a .csv file: {_EXPECTED[CSV]}"
    if not root.is_dir() or (root / "train").is_dir() or (root / "test").is_dir():
        found = [f"{s}/" for s in ("train", "test") if (root / s).is_dir()]
        return MUSDB, f"{' and '.join(found) or 'no folder'} found: {MUSDB_EXPECTED}"
    if (root / "data.json").is_file() or next(root.glob("*_METADATA.yaml"), None):
        what = "MoisesDB" if (root / "data.json").is_file() else "MedleyDB"
        raise StemcurateError(f"{root}: a {what} track folder; scan the folder that holds the tracks ({root.parent})")
    folders = _dirs(root)
    moises = next((d for d in folders if (d / "data.json").is_file()), None)
    if moises is not None:
        return MOISESDB, f"{moises.name}/data.json found: {_EXPECTED[MOISESDB]}"
    for d in folders:
        meta = next(d.glob("*_METADATA.yaml"), None) or next(d.glob("*_STEMS"), None)
        if meta is not None:
            return MEDLEYDB, f"{d.name}/{meta.name} found: {_EXPECTED[MEDLEYDB]}"
    holding = [(d, files) for d in folders if (files := _audio_files(d))]
    tracks = [(d, files) for d, files in holding if _holds_stems(files)]
    if holding and not tracks:
        d, files = holding[0]
        return STEM_FOLDERS, (
            f"its folders hold audio files not named like a track's stems ({d.name}/{files[0].name}): "
            f"{_EXPECTED[STEM_FOLDERS]}"
        )
    if tracks:
        d, files = tracks[0]
        named = ", ".join(f.name for f in files if f.stem.lower() in TRACK_LIKE)
        return MSST, f"no train/ or test/ folder; its folders hold stems ({d.name}/: {named}): {_EXPECTED[MSST]}"
    return MUSDB, f"no train/ or test/ folder and no dataset metadata; read as {MUSDB_EXPECTED}"


def detect_layout(root: Path) -> str:
    """The layout :func:`explain_layout` detects at ``root``."""
    return explain_layout(root)[0]


def resolve_layout(root: Path, layout: str | None) -> str:
    """``layout`` checked against :data:`LAYOUTS`, or the one detected at ``root`` when None."""
    return explain_layout(root, layout)[0]


def discover_other(root: Path, layout: str, *, subset: str = "train") -> list[Track]:
    """The tracks of a dataset in ``layout`` (not ``musdb``), sorted by name; :class:`StemcurateError`
    for a missing root, a subset other than ``train`` or when no track is found."""
    if layout == CSV:
        if not root.is_file():
            raise StemcurateError(f"{root}: CSV list does not exist" if not root.exists() else f"{root}: not a file")
    elif not root.is_dir():
        raise StemcurateError(f"{root}: data folder does not exist" if not root.exists() else f"{root}: not a folder")
    if subset != "train":
        raise StemcurateError(
            f"{root}: a {layout} dataset has no subsets, every track is read as 'train' (--subset {subset} "
            "does not apply)"
        )
    if layout == CSV:
        from curate.data.csvlist import csv_tracks

        tracks = csv_tracks(root)
    elif layout == STEM_FOLDERS:
        _refuse_track_folders(root)
        tracks = [
            Track(f"{d.name}/{f.name}", "train", root, {label: StemFile(label, f)}, layout=STEM_FOLDERS)
            for d in _dirs(root)
            if (label := label_name(d.name))
            for f in _audio_files(d)
        ]
    else:
        tracks = [t for d in _dirs(root) if isinstance(t := _read_track(d, root, layout), Track)]
    if not tracks:
        raise StemcurateError(f"{root}: no tracks found in the {layout} layout (expected {_EXPECTED[layout]})")
    listed = [f for t in tracks for s in t.stems.values() for f in s.files]
    if layout != STEM_FOLDERS and not any(f.exists() for f in listed):
        raise StemcurateError(
            f"{root}: none of the {len(listed)} files it lists exists (the first: {listed[0]}); "
            "check the paths, or where they are relative to"
        )
    return sorted(tracks, key=lambda t: t.name)


def _refuse_track_folders(root: Path) -> None:
    """``stem-folders``: :class:`StemcurateError` when two or more of the folders hold files named like a
    track's stems (``song/vocals.wav``, ``song/bass.wav``): tracks, whose names would be read as labels."""
    songs = [d for d in _dirs(root) if _holds_stems(_audio_files(d))]
    if len(songs) >= 2:
        raise StemcurateError(
            f"{root}: its folders {songs[0].name}/ and {songs[1].name}/ hold a track's stems (vocals, bass...), "
            f"not one stem's songs: scan it with --layout {MSST}"
        )


MUSDB_EXPECTED = "<subset>/<track>/<stem>.wav|.flac or <subset>/<track>.stem.mp4"
_EXPECTED = {
    MSST: "<track>/<stem>.wav|.flac (MSST's dataset type 1)",
    MOISESDB: "<track-id>/data.json and its stem folders",
    MOISESDB_FINE: "<track-id>/data.json and its stem folders",
    MEDLEYDB: "<Track>/<Track>_METADATA.yaml and <Track>_STEMS/",
    MEDLEYDB_FINE: "<Track>/<Track>_METADATA.yaml and <Track>_STEMS/",
    STEM_FOLDERS: "<stem>/<file>.wav|.flac",
    CSV: "rows 'instrum,path'",
}


def not_tracks_other(root: Path, layout: str) -> list[tuple[Path, str]]:
    """Entries of a MoisesDB or MedleyDB root that are not read as tracks, with why (no or unreadable
    metadata, no stems); files and folders left out of a stem-folders root; nothing for a CSV list."""
    out = []
    if layout == CSV or not root.is_dir():
        return out
    for p in sorted(root.iterdir()):
        if hidden(p):
            continue
        if p.is_file():
            out.append((p, f"not a track ({_EXPECTED[layout]})"))
        elif layout == STEM_FOLDERS:
            if not _audio_files(p):
                out.append((p, "a folder without audio files"))
        else:
            why = _read_track(p, root, layout)
            if isinstance(why, str):
                out.append((p, why))
    return out


def label_name(value) -> str | None:
    """A dataset's label as a stem name: a string, stripped, ``/`` and control characters replaced by ``-``
    and a space (a name is a file name in every export: MedleyDB has ``fx/processed sound``); None for
    a missing, empty or non-text label."""
    if not isinstance(value, str):
        return None
    name = "".join(" " if c in "\t\r\n" else c for c in value).replace("/", "-").replace("\\", "-").strip()
    return name or None


def _read_track(folder: Path, root: Path, layout: str) -> Track | str:
    """The track in a MoisesDB or MedleyDB folder, or why it is not one."""
    read = _moisesdb_track if layout in (MOISESDB, MOISESDB_FINE) else _medleydb_track
    return read(folder, root, layout)


def _source(label: str, files: list[Path], folder: Path) -> StemFile:
    """One file as itself; several as their sum, named ``<track folder>/<label>``."""
    files = sorted(set(files))
    return StemFile(label, files[0]) if len(files) == 1 else StemFile(label, folder / label, parts=tuple(files))


class _Bad(Exception):
    """Why a metadata file is not what its layout says, as a problem row's detail."""


def _read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8-sig")  # a byte-order mark (Excel, Windows editors) is not content


def _moisesdb_track(folder: Path, root: Path, layout: str) -> Track | str:
    """The track in a MoisesDB folder, or why it is not one."""
    meta_file = folder / "data.json"
    if not meta_file.is_file():
        return "no data.json (a MoisesDB track folder has data.json and its stem folders)"
    files: dict[str, list[Path]] = {}
    bleed: dict[str, bool] = {}
    notes = []
    try:
        try:
            meta = json.loads(_read_text(meta_file))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise _Bad(str(exc).splitlines()[0]) from None
        entries = meta.get("stems") if isinstance(meta, dict) else None
        if not isinstance(entries, list):
            raise _Bad("no list of 'stems'")
        for i, stem in enumerate(entries):
            fine = label_name(stem.get("stemName")) if isinstance(stem, dict) else None
            sources = stem.get("tracks") if isinstance(stem, dict) else None
            if fine is None or not isinstance(sources, list):
                raise _Bad(f"stem {i + 1} has no 'stemName' or no list of 'tracks'")
            label = fine if layout == MOISESDB_FINE else MOISESDB_TO_STANDARD.get(fine, "other")
            if fine not in MOISESDB_STEMS:
                notes.append((label, "label", f"'{fine}' is not a MoisesDB stem name; read as '{label}'"))
            for source in sources:
                sid = label_name(source.get("id")) if isinstance(source, dict) else None
                if sid is None:
                    raise _Bad(f"a source of stem '{fine}' has no 'id'")
                ext = str(source.get("extension") or "wav").lstrip(".")
                files.setdefault(label, []).append(folder / fine / f"{sid}.{ext}")
                bleed[label] = bleed.get(label, False) or _yes(source.get("hasBleed", False))
    except _Bad as exc:
        return f"unreadable data.json ({exc})"
    if not files:
        return "data.json lists no source files"
    stems = {label: _source(label, f, folder) for label, f in files.items()}
    return Track(folder.name, "train", root, stems, None, bleed=bleed, layout=layout, listed_in=meta_file, notes=notes)


def _yes(value) -> bool:
    """A flag written as a boolean, ``yes``/``no`` or ``true``/``false`` (MedleyDB's YAML, MoisesDB's JSON)."""
    return value is True or str(value).strip().lower() in ("yes", "true", "1")


def _medleydb_track(folder: Path, root: Path, layout: str) -> Track | str:
    """The track in a MedleyDB folder, or why it is not one."""
    import yaml

    meta_file = folder / f"{folder.name}_METADATA.yaml"
    if not meta_file.is_file():
        found = sorted(folder.glob("*_METADATA.yaml"))
        if len(found) != 1:
            return f"no {meta_file.name} (a MedleyDB track folder has <Track>_METADATA.yaml and <Track>_STEMS/)"
        meta_file = found[0]
    files: dict[str, list[Path]] = {}
    notes = []
    try:
        try:
            meta = yaml.safe_load(_read_text(meta_file))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise _Bad(" ".join(str(exc).split())) from None
        entries = meta.get("stems") if isinstance(meta, dict) else None
        if not isinstance(entries, dict):
            raise _Bad("no mapping of 'stems'")
        stem_dir = folder / str(meta.get("stem_dir") or f"{folder.name}_STEMS")
        for key in sorted(entries, key=str):
            entry = entries[key]
            instrument = entry.get("instrument") if isinstance(entry, dict) else None
            instrument = label_name(instrument[0] if isinstance(instrument, list) and instrument else instrument)
            filename = entry.get("filename") if isinstance(entry, dict) else None
            if instrument is None or not isinstance(filename, str) or not filename.strip():
                raise _Bad(f"stem {key} has no 'instrument' or no 'filename'")
            label = instrument if layout == MEDLEYDB_FINE else medleydb_stem(instrument)
            files.setdefault(label, []).append(stem_dir / filename.strip())
        mix = folder / str(meta.get("mix_filename") or f"{folder.name}_MIX.wav")
        has_bleed = _yes(meta.get("has_bleed", False))
    except _Bad as exc:
        return f"unreadable {meta_file.name} ({exc})"
    if not files:
        return f"{meta_file.name} lists no stems"
    stems = {label: _source(label, f, folder) for label, f in files.items()}
    mixture = StemFile(MIXTURE, mix) if mix.is_file() else None
    if mixture is None:
        notes.append(
            (MIXTURE, "missing", f"{mix.name} (mix_filename of {meta_file.name}) not found; no residual check")
        )
    bleed = {n: has_bleed for n in stems}
    return Track(
        folder.name, "train", root, stems, mixture, bleed=bleed, layout=layout, listed_in=meta_file, notes=notes
    )
