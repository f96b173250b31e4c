"""The reference pool: clean, correctly labelled units that teach the label model without being scored.

The classifier of :mod:`curate.scoring.classify` otherwise learns only from the dataset's own, possibly
wrong, labels, and a dataset of one track cannot be predicted out of fold at all. The pool joins
every out-of-fold fit (weighted by :attr:`curate.scoring.labelmodel.LabelModelConfig.reference_weight`):

* the default pool: ``curate synth`` tracks (:data:`SYNTH_POOL`), whose embeddings ship with the
  package in ``curate/assets/reference_synth.npz`` (one array per embedder part, so a scan does not
  render and embed them each time; ``scripts/build_reference_pool.py`` rebuilds the file). For an
  embedder whose part is not in the file (``panns``, or other musicnn weights), the pool is rendered
  and embedded once and kept in the user's cache folder (``$XDG_CACHE_HOME/stemcurate``, default
  ``~/.cache/stemcurate``; left out when that folder is not writable);
* ``curate scan --reference DIR``: a user's own trusted clean stems, in any layout ``curate scan``
  reads; every salient fragment of every requested stem becomes two units of the pool.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from curate import ASSETS
from curate.common.errors import StemcurateError
from curate.scoring.labelmodel import LabelModelConfig, ReferenceUnits, split_units

POOL_FILE = ASSETS / "reference_synth.npz"
POOL_VERSION = 1


@dataclass(frozen=True)
class SynthPool:
    """How the default pool is made: ``curate synth`` with these settings, train subset, default SAD."""

    tracks: int = 16
    seconds: float = 12.0
    seed: int = 1000


SYNTH_POOL = SynthPool()


def embed_dataset(
    root: str | Path,
    embedder: str,
    *,
    stems: list[str] | None = None,
    panns_checkpoint: str | None = None,
    device: str = "cpu",
    musicnn_weights: str | None = None,
    prefix: str = "reference:",
) -> ReferenceUnits:
    """Every salient fragment of ``root``'s train subset, as units with embeddings (no scoring).

    Track names get ``prefix`` so they never collide with the scanned dataset's. Files that fail the
    pre-flight checks are left out. Raises :class:`StemcurateError` when ``root`` holds no tracks or
    no fragment.
    """
    from curate.data.datasets import DEFAULT_STEMS, available_stems, discover
    from curate.scantrack import ScoreConfig, scan_track

    tracks = discover(root, subset="train")
    present = available_stems(tracks)
    stems = [s for s in (stems or DEFAULT_STEMS) if s in present]
    score = ScoreConfig(  # reference units are fragment halves: the middle halves would add near-copies
        embedder=embedder,
        panns_checkpoint=panns_checkpoint,
        device=device,
        musicnn_weights=musicnn_weights,
        labels=LabelModelConfig(units=2),
    )
    frames, embs = [], []
    for track in tracks:
        scanned = scan_track(track, stems, score=score)
        if len(scanned.rows) and scanned.arrays:
            frames.append(scanned.rows[["track", "stem", "start", "end"]])
            embs.append(scanned.arrays["emb"])
    if not frames:
        raise StemcurateError(f"{root}: the reference folder has no salient fragment to learn from")
    frame = pd.concat(frames, ignore_index=True)
    units, arrays, _ = split_units(frame, {"emb": np.concatenate(embs)})
    units = pd.DataFrame({"track": prefix + units["track"].astype(str), "stem": units["stem"].to_numpy()})
    return ReferenceUnits(units, arrays["emb"].astype(np.float32), str(root))


def build_synth_pool(
    embedder: str,
    *,
    device: str = "cpu",
    panns_checkpoint: str | None = None,
    musicnn_weights: str | None = None,
    pool: SynthPool = SYNTH_POOL,
) -> ReferenceUnits:
    """Render the default pool with ``curate synth`` into a temporary folder and embed it."""
    from curate.simulate.synth import synth_dataset

    with tempfile.TemporaryDirectory(prefix="stemcurate-pool-") as tmp:
        synth_dataset(tmp, tracks=pool.tracks, seconds=pool.seconds, seed=pool.seed)
        units = embed_dataset(
            tmp,
            embedder,
            panns_checkpoint=panns_checkpoint,
            device=device,
            musicnn_weights=musicnn_weights,
            prefix="synth:",
        )
    return ReferenceUnits(units.units, units.emb, "curate synth")


def cache_dir() -> Path:
    """Where built pools are kept: ``$XDG_CACHE_HOME/stemcurate`` (default ``~/.cache/stemcurate``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "stemcurate"


def _file_key(path: str | None) -> list | None:
    if not path:
        return None
    try:
        st = Path(path).stat()
        return [str(Path(path).resolve()), st.st_size, int(st.st_mtime)]
    except OSError:
        return [str(path)]


def cached_synth_pool(
    embedder: str,
    *,
    device: str = "cpu",
    panns_checkpoint: str | None = None,
    musicnn_weights: str | None = None,
    pool: SynthPool = SYNTH_POOL,
    folder: Path | None = None,
) -> ReferenceUnits:
    """:func:`build_synth_pool`, kept in :func:`cache_dir` under a key of everything it depends on."""
    key = json.dumps([POOL_VERSION, asdict(pool), embedder, _file_key(panns_checkpoint), _file_key(musicnn_weights)])
    path = (
        folder or cache_dir()
    ) / f"reference_{embedder.replace('+', '_')}_{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"
    part = embedder.replace("+", "_")
    try:
        cached = load_pool(part, path)
    except StemcurateError:
        cached = None
    if cached is not None:
        return cached
    built = build_synth_pool(
        embedder, device=device, panns_checkpoint=panns_checkpoint, musicnn_weights=musicnn_weights, pool=pool
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_pool({part: built}, path)
    except OSError:
        pass  # a read-only home: the pool is rebuilt next time
    return built


def save_pool(parts: dict[str, ReferenceUnits], path: str | Path = POOL_FILE) -> Path:
    """Write the embeddings of the same units under several embedder parts (``features``, ``musicnn``), float16."""
    from curate.common.atomic import atomic_path

    first = next(iter(parts.values()))
    for name, p in parts.items():
        if not p.units[["track", "stem"]].equals(first.units[["track", "stem"]]):
            raise ValueError(f"pool part {name} has other units than {next(iter(parts))}")
    arrays = {f"emb_{name}": p.emb.astype(np.float16) for name, p in parts.items()}
    with atomic_path(Path(path)) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh,
                version=np.array(POOL_VERSION),
                track=first.units["track"].to_numpy(str),
                stem=first.units["stem"].to_numpy(str),
                **arrays,
            )
    return Path(path)


def load_pool(embedder: str, path: str | Path = POOL_FILE) -> ReferenceUnits | None:
    """The shipped pool for ``embedder`` (``features``, ``musicnn``, ``features+musicnn``), or None when
    the file lacks one of its parts. Raises :class:`StemcurateError` for an unreadable file."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["version"]) != POOL_VERSION:
                return None
            keys = [f"emb_{part}" for part in embedder.split("+")]
            if any(k not in z for k in keys):
                return None
            emb = np.concatenate([z[k].astype(np.float32) for k in keys], axis=1)
            units = pd.DataFrame({"track": z["track"].astype(str), "stem": z["stem"].astype(str)})
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError) as exc:
        raise StemcurateError(f"{path}: unreadable reference pool ({exc})") from None
    return ReferenceUnits(units, emb, "curate synth")


def reference_pool(
    embedder: str,
    *,
    synth: bool = True,
    dirs: tuple[str, ...] = (),
    stems: list[str] | None = None,
    device: str = "cpu",
    panns_checkpoint: str | None = None,
    musicnn_weights: str | None = None,
) -> ReferenceUnits | None:
    """The pool a scan uses: the default synth pool (``synth``) plus every folder of ``dirs``; None if empty."""
    parts = []
    if synth:
        pool = None if musicnn_weights else load_pool(embedder)  # shipped embeddings are of the shipped weights
        if pool is None:
            pool = cached_synth_pool(
                embedder, device=device, panns_checkpoint=panns_checkpoint, musicnn_weights=musicnn_weights
            )
        parts.append(pool)
    for i, d in enumerate(dirs):
        parts.append(
            embed_dataset(
                d,
                embedder,
                stems=stems,
                panns_checkpoint=panns_checkpoint,
                device=device,
                musicnn_weights=musicnn_weights,
                prefix=f"reference{i}:",
            )
        )
    if not parts:
        return None
    return ReferenceUnits(
        pd.concat([p.units for p in parts], ignore_index=True),
        np.concatenate([p.emb for p in parts]),
        " + ".join(p.source for p in parts),
    )
