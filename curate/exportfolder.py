"""The folder an export writes: what it may hold, resuming, replacing, and its content digest.

``OUT`` holds the export's hidden marker (its settings, written first), ``export.json`` (written
last), split folders of track folders (``OUT/<split>/<track>/`` of ``.wav``/``.flac`` files, each
written to a hidden work folder and renamed), ``<split>.csv`` and ``<stem>_<split>.txt`` lists. A
folder holding anything else, a track folder the finished export does not list, or a file in a track
folder that is not audio is not an export's to delete: ``--overwrite`` refuses it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import soundfile as sf

from curate.common.atomic import filling_dir, write_text
from curate.common.errors import StemcurateError
from curate.data.audio import AUDIO_EXTENSIONS
from curate.exportsplits import SPLITS

EXPORT_FILE = "export.json"
MARKER = ".stemcurate-export"
"""Written first into ``OUT``: the settings of an export under way (a rerun with the same ones resumes)."""
REPLACED = ".stemcurate-replaced"
"""Written into ``OUT`` when an export replaced an earlier one, until it finishes (a resumed run still says so)."""
STALE = (
    "{out}: the earlier export was replaced; trainers' indexes of it are stale: delete demucs' "
    "metadata/wav_*.json and metadata/musdb_*.json and MSST's metadata_*.pkl where they ran "
    "(export.json's content_digest tells the exports apart)"
)


def _track_folder(p: Path, listed: set[str] | None, out: Path) -> bool:
    """A track folder an export wrote: audio files only, and listed in the finished export's record."""
    if p.is_symlink() or not p.is_dir():
        return False
    if p.name.startswith("."):
        return True  # a work folder of an interrupted export
    if listed is not None and p.relative_to(out).as_posix() not in listed:
        return False
    return all(f.is_file() and not f.is_symlink() and f.suffix.lower() in AUDIO_EXTENSIONS for f in p.iterdir())


def export_entries(out: Path) -> list[Path] | None:
    """The entries of ``out`` that an export writes (see the module docstring); None when it holds
    anything else."""
    listed = None
    try:
        record = json.loads((out / EXPORT_FILE).read_text())
        listed = {str(x) for key in ("written", "resumed") for x in record.get(key, [])}
    except FileNotFoundError:
        pass
    except (OSError, ValueError, AttributeError):
        return None
    entries = []
    for p in out.iterdir():
        if p.is_dir() and not p.is_symlink() and p.name in SPLITS:
            if not all(_track_folder(t, listed, out) for t in p.iterdir()):
                return None
        elif not (
            (p.is_file() and p.name in (MARKER, EXPORT_FILE, REPLACED))
            or (p.is_file() and p.suffix == ".csv" and p.stem in SPLITS)
            or (p.is_file() and p.suffix == ".txt" and p.stem.rpartition("_")[2] in SPLITS)
        ):
            return None
        entries.append(p)
    return entries


def prepare(out: Path, settings: dict, overwrite: bool) -> tuple[bool, bool]:
    """Make ``out`` ready: ``(resume, replaced)``, resume when it holds an interrupted export of the same
    settings, replaced when an earlier export was deleted (``overwrite``) by this run or by the
    interrupted one it resumes."""
    if out.exists() and not out.is_dir():
        raise StemcurateError(f"{out}: exists and is not a folder")
    marker, record = out / MARKER, out / EXPORT_FILE
    replaced = False
    if out.is_dir() and any(out.iterdir()):
        entries = export_entries(out) if marker.is_file() else None
        if entries is None:
            raise StemcurateError(
                f"{out}: holds something else than an export (or files added to one); choose another folder"
            )
        try:
            before = json.loads(marker.read_text())
        except (OSError, ValueError):
            before = None
        if before == settings and not record.is_file():
            return True, (out / REPLACED).is_file()
        if not overwrite:
            what = "a finished export" if record.is_file() else "an export with other settings"
            raise StemcurateError(f"{out}: holds {what}; pass --overwrite to replace it")
        for p in entries:  # only what an export writes
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        replaced = True
    with filling_dir(out, marker=(MARKER, json.dumps(settings, sort_keys=True))):
        if replaced:
            write_text(out / REPLACED, "")
    return False, replaced


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (a manifest's, recorded in an export's settings)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def content_digest(out: Path) -> str:
    """SHA-256 of what an export holds: every file's path (relative to ``out``), and for audio its rate,
    channels and samples (not its header, which holds a write time for float WAV), for the lists their
    bytes."""
    h = hashlib.sha256()
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out)
        if not p.is_file() or p.name in (MARKER, EXPORT_FILE) or any(q.startswith(".") for q in rel.parts):
            continue
        h.update(f"{rel.as_posix()}\n".encode())
        if p.suffix.lower() in AUDIO_EXTENSIONS:
            with sf.SoundFile(str(p)) as f:
                h.update(f"{f.samplerate} {f.channels}\n".encode())
                for block in f.blocks(blocksize=1 << 18, dtype="float32"):
                    h.update(block.tobytes())
        else:
            h.update(p.read_bytes())
    return h.hexdigest()
