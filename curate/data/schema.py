"""The Parquet manifest: the contract between curation and training.

One row per salient fragment of one stem. Positions are in samples at ``sample_rate``; ``path``
is relative to the data root stored in the file's metadata, so a manifest moves with its data.
Every other module imports the schema from here; nothing else defines manifest columns.

Columns (nullable ones are filled by the classifier stage of ``curate scan``):

===============  =========  ==========================================================
track            string     track name (folder name, or file name without .stem.mp4)
subset           string     ``train`` or ``test``
stem             string     label of the stem file (vocals, bass, drums, other, ...)
path             string     stem file relative to the data root (POSIX separators)
start, end       int64      fragment bounds in samples, ``[start, end)``
sample_rate      int32      Hz
channels         int16      channels of the stem file
rms_db           float32    RMS of the fragment over all channels, dBFS
quality          float32    0-1, what ``curate filter --threshold`` compares (nullable)
label_score      float32    probability that the label is right (nullable)
predicted_stem   string     most likely label for the content (nullable)
bleed_db         float32    leakage of other stems, dB relative to the fragment (nullable)
bleed_stem       string     stem that leaks most (nullable)
bleed_delay_ms   float32    delay of that stem's leak path, ms (0: zero delay, no direction in the delay;
                            nullable)
separation_db    float32    self-separation: labelled target's model output vs the strongest other
                            target's, dB (``curate scan --separator``; nullable)
mixture_lock     float32    -1..1: how closely the stem keeps the mixture's phase where it is present
                            but not dominant; near 1 for a separator's output (nullable; see
                            :mod:`curate.scoring.separated`)
reason           string     why a fragment was rejected, human readable (nullable)
parts            list       for a stem summed from several files (MoisesDB, MedleyDB): the files,
                 <string>   relative to the data root; ``path`` is then ``<track folder>/<stem>``, a
                            name, not a file (null for a stem in one file)
dataset_bleed    bool       the dataset's own bleed flag of the stem (MedleyDB ``has_bleed``,
                            MoisesDB ``hasBleed``; null where the dataset has none)
===============  =========  ==========================================================

Extra columns (e.g. ground truth written by ``curate corrupt``) are kept as they are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from curate.common.atomic import atomic_path
from curate.common.errors import StemcurateError, as_path
from curate.common.outputs import META_KIND

MANIFEST_VERSION = 1
"""Bumped whenever a column changes meaning or type."""

META_VERSION = b"stemcurate.version"
META_ROOT = b"stemcurate.data_root"
META_EXTRA = b"stemcurate.meta"

MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("track", pa.string(), nullable=False),
        pa.field("subset", pa.string(), nullable=False),
        pa.field("stem", pa.string(), nullable=False),
        pa.field("path", pa.string(), nullable=False),
        pa.field("start", pa.int64(), nullable=False),
        pa.field("end", pa.int64(), nullable=False),
        pa.field("sample_rate", pa.int32(), nullable=False),
        pa.field("channels", pa.int16(), nullable=False),
        pa.field("rms_db", pa.float32(), nullable=False),
        pa.field("quality", pa.float32()),
        pa.field("label_score", pa.float32()),
        pa.field("predicted_stem", pa.string()),
        pa.field("bleed_db", pa.float32()),
        pa.field("bleed_stem", pa.string()),
        pa.field("bleed_delay_ms", pa.float32()),
        pa.field("separation_db", pa.float32()),
        pa.field("mixture_lock", pa.float32()),
        pa.field("reason", pa.string()),
        pa.field("parts", pa.list_(pa.string())),
        pa.field("dataset_bleed", pa.bool_()),
    ]
)

PROBLEMS_SCHEMA = pa.schema(
    [
        pa.field("track", pa.string(), nullable=False),
        pa.field("subset", pa.string(), nullable=False),
        pa.field("stem", pa.string()),
        pa.field("path", pa.string()),
        pa.field("check", pa.string(), nullable=False),
        pa.field("severity", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
    ]
)
"""Rows of ``<manifest>.problems.parquet``: one per problem found by the pre-flight checks."""

CORRUPTIONS_SCHEMA = pa.schema(
    [
        pa.field("track", pa.string(), nullable=False),
        pa.field("subset", pa.string(), nullable=False),
        pa.field("stem", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("start", pa.int64(), nullable=False),
        pa.field("end", pa.int64(), nullable=False),
        pa.field("source_track", pa.string()),
        pa.field("source_stem", pa.string()),
        pa.field("leak_db", pa.float32()),
        pa.field("delay_ms", pa.float32()),
        pa.field("filter", pa.string()),
    ]
)
"""Rows of ``corruptions.parquet`` written by ``curate corrupt``: one per corruption of one stem.

``kind`` is swap, replace, partial, separated, or a leak kind: bleed, room or console (see
:mod:`curate.simulate.corrupt`); ``[start, end)`` the affected samples; ``source_*`` where the wrong content
comes from (a separated stem: its siblings, comma-separated); ``leak_db`` the level of one source's leak
relative to the receiving stem's RMS (a room leak has a row per source: its level in all is their power
sum; a separated stem: the level of the siblings' masked remains); ``filter`` the leak's coloration or the
separator mask's settings.
"""

CORRUPTIONS_FILE = "corruptions.parquet"
"""``curate corrupt``'s ground truth, at the root of the copy it writes."""

DECISIONS_SCHEMA = pa.schema(
    [
        pa.field("track", pa.string(), nullable=False),
        pa.field("subset", pa.string(), nullable=False),
        pa.field("stem", pa.string(), nullable=False),
        pa.field("start", pa.int64(), nullable=False),
        pa.field("end", pa.int64(), nullable=False),
        pa.field("decision", pa.string(), nullable=False),
        pa.field("new_label", pa.string()),
        pa.field("time", pa.string(), nullable=False),
        pa.field("note", pa.string()),
    ]
)
"""Rows of a manifest's review decisions (``M.decisions.parquet``): see :mod:`curate.decisions`."""

REPAIRS_SCHEMA = pa.schema(
    [
        pa.field("track", pa.string(), nullable=False),
        pa.field("subset", pa.string(), nullable=False),
        pa.field("stem", pa.string(), nullable=False),
        pa.field("action", pa.string(), nullable=False),
        pa.field("new_stem", pa.string()),
        pa.field("source_stem", pa.string()),
        pa.field("leak_db", pa.float32()),
        pa.field("removed_db", pa.float32()),
        pa.field("detail", pa.string()),
    ]
)
"""Rows of ``repairs.parquet`` written by ``curate repair``: one per action on one stem file.

``action`` is ``relabel`` (the file ``stem`` is written as ``new_stem``), ``leak`` (a FIR-filtered
copy of ``source_stem`` was subtracted; ``leak_db`` the measured leak, ``removed_db`` the energy
removed, both in dB relative to the file's energy before the repair), ``leak kept`` (measured,
not subtracted: see :mod:`curate.repair`) or ``not repaired`` (the track has a file no reader can
use, named in ``detail`` with the problem; the track is copied unchanged, ``stem`` is ``-``).
"""

REPAIRS_FILE = "repairs.parquet"
"""``curate repair``'s log of actions, at the root of the copy it writes."""

REQUIRED_COLUMNS = [f.name for f in MANIFEST_SCHEMA if not f.nullable]
SCORE_COLUMNS = [
    "quality",
    "label_score",
    "predicted_stem",
    "bleed_db",
    "bleed_stem",
    "bleed_delay_ms",
    "separation_db",
    "mixture_lock",
    "reason",
]


@dataclass
class Manifest:
    """A manifest table with the data root it is relative to and free-form metadata."""

    frame: pd.DataFrame
    root: Path
    meta: dict = field(default_factory=dict)

    def audio_path(self, row) -> Path:
        """Absolute path of the stem file of one row (a Series or namedtuple with ``path``); for a row with
        ``parts`` the name of their sum (:meth:`audio_files` lists the files)."""
        return self.root / row.path

    def audio_files(self, frame: pd.DataFrame | None = None) -> pd.Series:
        """The last fragment end (samples) of every audio file the rows of ``frame`` (default: all) read,
        indexed by path relative to the root: a row's ``path``, or each of its ``parts`` when it has them."""
        frame = self.frame if frame is None else frame
        files = frame[["path", "end"]].copy()
        if "parts" in frame.columns:
            files["path"] = [p if q is None else q for p, q in zip(frame["path"], frame["parts"].map(row_parts))]
            files = files.explode("path")
        return files.groupby("path")["end"].max()

    def check_files(self, where: str | Path, *, tracks=None) -> None:
        """:class:`StemcurateError` naming ``where`` (the manifest) and the first of its audio files (of
        ``tracks`` when given) that is not there (a dataset moved or deleted since the scan), or naming a
        WAV/FLAC file shorter than its fragments (changed since the scan; read from the header)."""
        from curate.data import audio as audio_io
        from curate.data.datasets import file_changed

        frame = self.frame if tracks is None else self.frame[self.frame["track"].isin(set(tracks))]
        ends = self.audio_files(frame)
        missing = [p for p in ends.index if not (self.root / p).is_file()]
        if missing:
            raise StemcurateError(
                f"{where}: {len(missing)} of {len(ends)} audio files are not under the manifest's data root "
                f"{self.root} (first: {missing[0]}); was the dataset moved? re-scan it where it is now"
            )
        for p, end in ends.items():
            if Path(p).suffix.lower() in (".wav", ".flac") and (frames := audio_io.info(self.root / p).frames) < end:
                raise file_changed(self.root / p, frames, int(end))

    @property
    def has_scores(self) -> bool:
        """True when the classifier stage filled ``quality`` for every row."""
        return len(self.frame) > 0 and bool(self.frame["quality"].notna().all())


def row_parts(value) -> list[str] | None:
    """A ``parts`` cell as a list of paths, None for a stem in one file (null or empty; Parquet gives arrays)."""
    return None if value is None or len(value) == 0 else [str(p) for p in value]


def empty_frame() -> pd.DataFrame:
    """A manifest frame with all columns and no rows."""
    return MANIFEST_SCHEMA.empty_table().to_pandas()


def _to_table(frame: pd.DataFrame, schema: pa.Schema, what: str) -> pa.Table:
    frame = frame.copy()
    for f in schema:
        if f.name not in frame.columns:
            if not f.nullable:
                raise StemcurateError(f"{what}: missing required column '{f.name}'")
            frame[f.name] = None
    extra = [c for c in frame.columns if c not in schema.names]
    ordered = frame[schema.names + extra].reset_index(drop=True)
    try:
        table = pa.Table.from_pandas(ordered, preserve_index=False)
        fields = list(schema) + [table.schema.field(c) for c in extra]
        return table.cast(pa.schema(fields))
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
        raise StemcurateError(f"{what}: cannot convert to the schema ({exc})") from None


def write_manifest(frame: pd.DataFrame, path: str | Path, *, root: str | Path, meta: dict | None = None) -> Path:
    """Validate ``frame`` against the schema and write it atomically to ``path``.

    ``root`` is the data root that ``path`` columns are relative to (stored absolute).
    """
    path = Path(path)
    table = _to_table(frame, MANIFEST_SCHEMA, str(path))
    if len(frame) and not (frame["end"] > frame["start"]).all():
        raise StemcurateError(f"{path}: fragments with end <= start")
    md = {
        META_KIND: b"manifest",
        META_VERSION: str(MANIFEST_VERSION).encode(),
        META_ROOT: str(Path(root).resolve()).encode(),
        META_EXTRA: json.dumps(meta or {}, sort_keys=True).encode(),
    }
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **md})
    write_parquet(table, path)
    return path


def read_manifest(path: str | Path) -> Manifest:
    """Read and validate a manifest; a clear :class:`StemcurateError` when it is not one."""
    path = as_path(path, "manifest")
    if not path.is_file():
        raise StemcurateError(f"{path}: manifest not found")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise StemcurateError(f"{path}: not a Parquet file ({str(exc).splitlines()[0]})") from None
    md = table.schema.metadata or {}
    if md.get(META_KIND) != b"manifest":
        raise StemcurateError(f"{path}: not a stemcurate manifest (no '{META_KIND.decode()}' metadata)")
    version = md.get(META_VERSION, b"?").decode()
    if version != str(MANIFEST_VERSION):
        raise StemcurateError(
            f"{path}: manifest version {version}, this stemcurate reads version {MANIFEST_VERSION}; rescan the data"
        )
    for f in MANIFEST_SCHEMA:  # nullable columns added after a file was written read as empty
        if f.nullable and f.name not in table.schema.names:
            table = table.append_column(f, pa.nulls(len(table), type=f.type))
    missing = [n for n in MANIFEST_SCHEMA.names if n not in table.schema.names]
    if missing:
        raise StemcurateError(f"{path}: manifest lacks column(s) {', '.join(missing)}")
    for f in MANIFEST_SCHEMA:
        if not table.schema.field(f.name).type.equals(f.type):
            raise StemcurateError(
                f"{path}: column '{f.name}' has type {table.schema.field(f.name).type}, expected {f.type}"
            )
    for f in MANIFEST_SCHEMA:
        if not f.nullable and table.column(f.name).null_count:
            raise StemcurateError(f"{path}: column '{f.name}' has {table.column(f.name).null_count} empty value(s)")
    try:
        root = Path(md.get(META_ROOT, b".").decode())
        meta = json.loads(md.get(META_EXTRA, b"{}").decode() or "{}")
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except (UnicodeDecodeError, ValueError) as exc:
        raise StemcurateError(f"{path}: unreadable '{META_EXTRA.decode()}' metadata ({exc})") from None
    frame = table.to_pandas()
    _check_rows(frame, path)
    return Manifest(frame=frame, root=root, meta=meta)


def _check_rows(frame: pd.DataFrame, path: Path) -> None:
    """:class:`StemcurateError` naming the first row whose values no scan writes (a hand-edited manifest):
    bounds outside ``0 <= start < end``, a rate or channel count below 1, a missing ``rms_db``, a non-finite number, a
    quality or label score outside [0, 1], a mixture lock outside [-1, 1]."""
    floats = ["rms_db", "quality", "label_score", "bleed_db", "bleed_delay_ms", "separation_db", "mixture_lock"]
    bad = {
        "start < 0": frame["start"] < 0,
        "end <= start": frame["end"] <= frame["start"],
        "sample_rate < 1": frame["sample_rate"] < 1,
        "channels < 1": frame["channels"] < 1,
        "rms_db missing": frame["rms_db"].isna(),
        **{f"{c} not finite": frame[c].notna() & ~np.isfinite(frame[c].astype("float64")) for c in floats},
        **{f"{c} outside [0, 1]": (frame[c] < -1e-6) | (frame[c] > 1 + 1e-6) for c in ("quality", "label_score")},
        "mixture_lock outside [-1, 1]": (frame["mixture_lock"] < -1 - 1e-6) | (frame["mixture_lock"] > 1 + 1e-6),
    }
    for what, mask in bad.items():
        if mask.any():
            i = int(np.flatnonzero(mask.to_numpy())[0])
            row = frame.iloc[i]
            raise StemcurateError(
                f"{path}: row {i} ({row['track']}/{row['stem']}, {row['path']}): {what} "
                f"({int(mask.sum())} row(s)); rescan the data or fix the file"
            )


def problems_path(manifest_path: str | Path) -> Path:
    """``out/m.parquet`` -> ``out/m.problems.parquet``."""
    p = Path(manifest_path)
    stem = p.name[: -len(".parquet")] if p.name.endswith(".parquet") else p.name
    return p.with_name(f"{stem}.problems.parquet")


def _write_table(frame: pd.DataFrame, schema: pa.Schema, path: str | Path, kind: bytes) -> Path:
    table = _to_table(frame, schema, str(path))
    table = table.replace_schema_metadata({META_KIND: kind, META_VERSION: str(MANIFEST_VERSION).encode()})
    return write_parquet(table, path)


def write_parquet(table: pa.Table | pd.DataFrame, path: str | Path) -> Path:
    """Write ``table`` (a frame is written without its index) to ``path`` atomically, through a file closed
    here whatever happens (pyarrow keeps its own open when a write fails, on a full disk)."""
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        pq.write_table(table, fh)
    return Path(path)


def write_problems(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a problems table (see :data:`PROBLEMS_SCHEMA`) atomically."""
    return _write_table(frame, PROBLEMS_SCHEMA, path, b"problems")


def write_corruptions(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a corruption truth table (see :data:`CORRUPTIONS_SCHEMA`) atomically."""
    return _write_table(frame, CORRUPTIONS_SCHEMA, path, b"corruptions")


def write_repairs(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a repairs table (see :data:`REPAIRS_SCHEMA`) atomically."""
    return _write_table(frame, REPAIRS_SCHEMA, path, b"repairs")


def read_corruptions(path: str | Path) -> pd.DataFrame:
    """Read ``corruptions.parquet``; a clear error when it is not one."""
    path = Path(path)
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise StemcurateError(f"{path}: cannot read corruption table ({str(exc).splitlines()[0]})") from None
    if (table.schema.metadata or {}).get(META_KIND) != b"corruptions":
        raise StemcurateError(f"{path}: not a stemcurate corruption table")
    return table.to_pandas()


def empty_problems() -> pd.DataFrame:
    """A problems frame with all columns and no rows."""
    return PROBLEMS_SCHEMA.empty_table().to_pandas()
