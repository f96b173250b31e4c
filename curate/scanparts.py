"""What ``curate scan`` finds in one track (:class:`TrackScan`), and the store that makes a scan resumable.

Each finished track is kept in ``<manifest>.parts/`` under a key of its files' paths, sizes and
modification times (:func:`part_key`): fragments as Parquet (written last: its presence marks the
track done), problems and the mixture residual as JSON, embeddings as ``.npz``. ``scan.json`` holds
the scan's settings; a parts folder of other settings is emptied, and a folder the scan did not
write is never touched (:func:`check_parts`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from curate.common.atomic import atomic_path, write_text
from curate.common.errors import StemcurateError
from curate.data.checks import Problem
from curate.data.datasets import Track
from curate.data.schema import REQUIRED_COLUMNS, write_parquet

PARTS_KIND = "stemcurate scan parts"
"""The ``kind`` in ``<output>.parts/scan.json``: how a scan knows the parts folder is its own."""

ROW_COLUMNS = REQUIRED_COLUMNS + ["bleed_db", "bleed_stem", "bleed_delay_ms", "mixture_lock", "parts", "dataset_bleed"]
"""The columns of a track's fragment rows before the label model scores them."""


@dataclass
class TrackScan:
    """One track scanned: its fragment rows, the problems found, the mixture residual (dB, None
    without a usable mixture) and, when scored, the arrays of the fragments' units
    (:func:`~curate.scoring.labelmodel.unit_bounds`): ``emb`` ``(rows, U, d)`` and onset envelopes ``env``
    ``(rows, U, frames)``."""

    rows: pd.DataFrame
    problems: list[Problem]
    residual_db: float | None
    arrays: dict[str, np.ndarray] | None = None


def part_key(track: Track) -> str:
    """The track's name and the path, size and modification time of each of its files: a track whose files
    changed since an interrupted scan is scanned again, not taken from the earlier part."""
    files = sorted({str(p) for f in [*track.stems.values(), track.mixture] if f is not None for p in f.files})
    stats = []
    for f in files:
        try:
            st = os.stat(f)
            stats.append(f"{f}:{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            stats.append(f"{f}:missing")
    return hashlib.sha1("\n".join([f"{track.subset}/{track.name}", *stats]).encode()).hexdigest()[:16]


STAMP = "scan.json"
SHARDED = "sharded"
"""Marker in the parts folder: ``--shard`` runs wrote parts here (a merge with other settings must not drop them)."""


def _stamp_tmp(parts: Path) -> Path:
    return parts / f".{STAMP}.{os.getpid()}.tmp"


def check_parts(parts: Path) -> None:
    """:class:`StemcurateError` unless ``parts`` (``<output>.parts``) is free for the scan's resumable
    parts: new, empty, or written by an earlier scan (its ``scan.json`` says so). Anything else there, a
    dataset named ``songs.parts`` or a file, is the user's and never removed."""
    if not parts.exists() and not parts.is_symlink():
        return
    if parts.is_dir() and not parts.is_symlink():
        # empty, or holding only the stamp another shard is writing
        if not any(p for p in parts.iterdir() if not (p.name.startswith(f".{STAMP}.") and p.name.endswith(".tmp"))):
            return
        try:
            if json.loads((parts / STAMP).read_text()).get("kind") == PARTS_KIND:
                return
        except (OSError, ValueError, AttributeError):
            pass
    raise StemcurateError(
        f"{parts}: exists and is not an interrupted scan's parts folder, which the scan keeps there; "
        "move it or choose another --output"
    )


def _read_stamp(stamp: Path):
    """The settings in ``stamp``; None when there is none; ``{}`` when it cannot be read."""
    try:
        value = json.loads(stamp.read_text())
        return value if isinstance(value, dict) else {}
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def _create_stamp(parts: Path, fingerprint: dict) -> None:
    """Write ``scan.json`` whole and only if there is none (a hard link of a complete temporary file: of
    shards starting together, the first one's settings win and the others compare with them)."""
    tmp = _stamp_tmp(parts)
    try:
        tmp.write_text(json.dumps(fingerprint))
        os.link(tmp, parts / STAMP)
    except FileExistsError:
        pass
    except OSError as exc:  # a full disk: said at the folder the user named, with the system's reason
        raise StemcurateError(f"{parts}: cannot write ({exc.strerror or exc})") from None
    finally:
        tmp.unlink(missing_ok=True)


def prepare_parts(parts: Path, settings: dict, *, shard: bool = False) -> None:
    """Make ``parts`` the store of a scan with ``settings`` (JSON-able): kept when its ``scan.json``
    holds the same settings. Otherwise emptied, unless ``shard`` (a ``--shard`` run) or the parts came
    from shards: then :class:`StemcurateError` naming the settings that differ, since emptying would
    drop other machines' work (call :func:`check_parts` first)."""
    stamp = parts / STAMP
    fingerprint = json.loads(json.dumps({"kind": PARTS_KIND, **settings}))
    parts.mkdir(parents=True, exist_ok=True)
    current = _read_stamp(stamp)
    if current is None and not any(parts.glob("*.parquet")):
        _create_stamp(parts, fingerprint)
        current = _read_stamp(stamp)
    if current != fingerprint:
        if shard or (parts / SHARDED).exists():
            old = current or {}
            differ = sorted(k for k in set(old) | set(fingerprint) if old.get(k) != fingerprint.get(k))
            raise StemcurateError(
                f"{parts}: holds the parts of --shard runs with other settings (differing: {', '.join(differ)}); "
                "give every shard and the merge the same settings, or remove the folder to start again"
            )
        shutil.rmtree(parts)
        parts.mkdir(parents=True)
        _create_stamp(parts, fingerprint)
    if shard and not (parts / SHARDED).exists():
        write_text(parts / SHARDED, "")


def shard_of(track: Track, shards: int) -> int:
    """The shard (``0 .. shards - 1``) a track belongs to: a stable hash of ``<subset>/<track>``, the same on
    every machine and in every run, so that the shards of ``curate scan --shard I/N`` cover each track once."""
    digest = hashlib.sha1(f"{track.subset}/{track.name}".encode()).hexdigest()
    return int(digest[:12], 16) % shards


def load_part(parts: Path, key: str) -> TrackScan | None:
    """The track stored under ``key``, or None when it is not there (or unreadable: scanned again)."""
    frag_file, prob_file, emb_file = parts / f"{key}.parquet", parts / f"{key}.json", parts / f"{key}.npz"
    if not (frag_file.exists() and prob_file.exists()):
        return None
    try:
        done = json.loads(prob_file.read_text())
        arrays = dict(np.load(emb_file)) if done.get("embeddings") else None
        frame = pd.read_parquet(frag_file)
    except (OSError, ValueError):
        return None
    return TrackScan(frame, [Problem(**p) for p in done["problems"]], done["residual_db"], arrays)


def save_part(parts: Path, key: str, scanned: TrackScan) -> None:
    """Store one scanned track under ``key`` (each file atomically; the fragments last)."""
    if scanned.arrays is not None:
        with atomic_path(parts / f"{key}.npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **scanned.arrays)
    done = {
        "problems": [asdict(p) for p in scanned.problems],
        "residual_db": scanned.residual_db,
        "embeddings": scanned.arrays is not None,
    }
    write_text(parts / f"{key}.json", json.dumps(done))
    write_parquet(scanned.rows, parts / f"{key}.parquet")  # written last: its presence marks the track done
