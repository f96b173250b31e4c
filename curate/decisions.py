"""Review decisions: what a person decided about the calls curation made, kept beside the manifest.

A scored manifest ``M.parquet`` has its decisions in ``M.decisions.parquet``, one row per decision in the
order they were made: ``track``, ``subset``, ``stem``, ``start`` and ``end`` (samples; both -1 for the
whole stem), ``decision``, ``new_label`` (``relabel`` only), ``time`` (UTC, ISO 8601) and ``note``.

* ``keep``: the fragment is kept whatever its quality;
* ``reject``: it is rejected, with the reason "rejected in review";
* ``relabel``: its file holds ``new_label``, and it is kept under that label;
* ``bleed_ok``: the measured leak is acceptable for this stem: quality without the bleed term;
* ``undecided``: the earlier decisions about it are withdrawn (an undo).

A fragment follows its own latest verdict (keep, reject, bleed_ok), else its stem's latest; its file's
label is the latest relabel of it or its stem. An ``undecided`` withdraws the decisions at its own level
only: undoing a fragment's call brings back its stem's. Each decision is written at once:
the file is rewritten atomically under a lock, so a killed process leaves it whole and two writers
(two browser tabs) do not lose each other's decisions.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from curate.common.errors import StemcurateError, as_path
from curate.common.lock import exclusive
from curate.data.schema import DECISIONS_SCHEMA, write_parquet

DECISIONS = ("keep", "reject", "relabel", "bleed_ok", "undecided")
WHOLE = -1
"""``start`` and ``end`` of a decision about a whole stem."""
REVIEW_REASON = "rejected in review"


@dataclass(frozen=True)
class Decision:
    """One decision about a fragment (``start``/``end`` in samples) or a whole stem (both :data:`WHOLE`)."""

    track: str
    subset: str
    stem: str
    decision: str
    start: int = WHOLE
    end: int = WHOLE
    new_label: str | None = None
    note: str | None = None

    def __post_init__(self):
        if self.decision not in DECISIONS:
            raise StemcurateError(f"decision {self.decision!r}: one of {', '.join(DECISIONS)}")
        if (self.decision == "relabel") != bool(self.new_label):
            raise StemcurateError("a relabel decision names its new label, and only a relabel does")
        whole = self.start == WHOLE and self.end == WHOLE
        if not whole and not 0 <= self.start < self.end:
            raise StemcurateError(f"decision on {self.track}/{self.stem}: start {self.start}, end {self.end}")
        if self.decision == "relabel":
            if not whole:
                raise StemcurateError(
                    f"relabel {self.track}/{self.stem}: a label is a file's, so a relabel names the whole stem"
                )
            if self.new_label == self.stem:
                raise StemcurateError(f"relabel {self.track}/{self.stem}: the new label is the label it has")
            label_problem(self.new_label, f"relabel {self.track}/{self.stem}")


def label_problem(label, where: str) -> None:
    """:class:`StemcurateError` for a label that cannot name a stem file: empty, ``mixture``, a path
    (``/``, ``\\``), or starting with a dot."""
    if not isinstance(label, str) or not label.strip() or label != label.strip():
        raise StemcurateError(f"{where}: the new label {label!r} is not a stem name")
    if label == "mixture" or label.startswith(".") or any(c in label for c in "/\\\0"):
        raise StemcurateError(f"{where}: the new label {label!r} cannot name a stem's file")


def decisions_path(manifest: str | Path) -> Path:
    """``M.decisions.parquet`` beside the manifest ``M.parquet``."""
    manifest = Path(manifest)
    stem = manifest.name[: -len(".parquet")] if manifest.name.endswith(".parquet") else manifest.name
    return manifest.with_name(f"{stem}.decisions.parquet")


def read_decisions(manifest: str | Path) -> pd.DataFrame:
    """The decisions recorded for ``manifest`` (empty when none), in the order they were made;
    :class:`StemcurateError` for a decisions file that cannot be read."""
    path = decisions_path(as_path(manifest, "manifest"))
    if not path.exists():
        return DECISIONS_SCHEMA.empty_table().to_pandas()
    try:
        frame = pq.read_table(path).cast(DECISIONS_SCHEMA).to_pandas()
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise StemcurateError(f"{path}: cannot read the review decisions ({exc})") from None
    bad = ~frame["decision"].isin(DECISIONS)
    relabel = frame["decision"] == "relabel"
    bad |= relabel != frame["new_label"].notna()
    bad |= relabel & ~((frame["start"] == WHOLE) & (frame["end"] == WHOLE))
    if bad.any():
        i = int(bad.to_numpy().argmax())
        raise StemcurateError(
            f"{path}: row {i}: not a decision ({frame['decision'].iloc[i]!r}, new label "
            f"{frame['new_label'].iloc[i]!r}, {frame['start'].iloc[i]}-{frame['end'].iloc[i]})"
        )
    for i in np.flatnonzero(relabel.to_numpy()):
        label_problem(frame["new_label"].iloc[i], f"{path}: row {i}")
    return frame


def check_relabels(frame: pd.DataFrame, new_label: pd.Series, where) -> None:
    """:class:`StemcurateError` (naming ``where``) for relabels (``new_label`` per row of ``frame``, as
    :func:`latest` gives it) that cannot be followed: a label the dataset does not have (a typo would
    make a stem of its own), a ``.stem.mp4`` stream (its streams are read by their stem's name), or two
    files of one track left under one label (one file of a swapped pair relabelled without the other)."""
    from curate.data.datasets import is_stem_mp4

    relabel = new_label.notna().to_numpy()
    if not relabel.any():
        return
    labels = set(frame["stem"])
    odd = relabel & ~new_label.isin(labels).to_numpy()
    if odd.any():
        r = frame[odd].iloc[0]
        raise StemcurateError(
            f"{where}: relabel {r['track']}/{r['stem']} as {new_label[odd].iloc[0]!r}, a label the dataset does "
            f"not have ({', '.join(sorted(labels))})"
        )
    streams = relabel & frame["path"].astype(str).map(is_stem_mp4).to_numpy()
    if streams.any():
        r = frame[streams].iloc[0]
        raise StemcurateError(
            f"{where}: a relabel of {r['track']}/{r['stem']}, a stream of a .stem.mp4, whose streams are read by "
            "their stem's name; export the tracks to folders (curate export) and review a scan of those"
        )
    files = frame.assign(stem=new_label.where(relabel, frame["stem"])).drop_duplicates(
        ["subset", "track", "stem", "path"]
    )
    twice = files[files.duplicated(["subset", "track", "stem"], keep=False)]
    if len(twice):
        r = twice.iloc[0]
        paths = sorted(twice[(twice["track"] == r["track"]) & (twice["stem"] == r["stem"])]["path"])
        raise StemcurateError(
            f"{where}: after the review's relabels, track {r['track']!r} has two files labelled {r['stem']!r} "
            f"({', '.join(paths)}); relabel the other one too (a swap), or undo one"
        )


def record(manifest: str | Path, decisions: list[Decision]) -> Path:
    """Append ``decisions`` to the manifest's decisions file, atomically and under its lock (waiting up to
    10 s for another writer); the file's path."""
    manifest = as_path(manifest, "manifest")
    if not manifest.is_file():
        raise StemcurateError(f"{manifest}: no such manifest (decisions are recorded beside it)")
    path = decisions_path(manifest)
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
    rows = pd.DataFrame([{**asdict(d), "time": now} for d in decisions], columns=DECISIONS_SCHEMA.names)
    with exclusive(path, what="review", wait_s=10.0):
        frame = pd.concat([read_decisions(manifest), rows], ignore_index=True)
        write_parquet(pa.Table.from_pandas(frame, schema=DECISIONS_SCHEMA, preserve_index=False), path)
    return path


def latest(frame: pd.DataFrame, decisions: pd.DataFrame) -> pd.DataFrame:
    """What the review decided for each row of ``frame`` (a manifest's fragments), indexed as ``frame``:
    ``decision``, the verdict it follows (``keep``, ``reject``, ``bleed_ok`` or None: its own latest,
    else its whole stem's latest), and ``new_label``, the label of its file (the latest ``relabel``, its
    own or its stem's, or None). An ``undecided`` withdraws the verdicts and labels of its own level only."""
    out = pd.DataFrame({"decision": None, "new_label": None}, index=frame.index, dtype=object)
    if len(decisions) == 0 or len(frame) == 0:
        return out
    key = ["track", "subset", "stem"]
    rows = frame[key + ["start", "end"]].reset_index(names="_row")
    dec = decisions.assign(_order=range(len(decisions)))
    both = rows.merge(dec, on=key, suffixes=("", "_d"))
    whole = (both["start_d"] == WHOLE) & (both["end_d"] == WHOLE)
    exact = (both["start_d"] == both["start"]) & (both["end_d"] == both["end"])
    for column, kinds in (("decision", ("keep", "reject", "bleed_ok")), ("new_label", ("relabel",))):
        for hit in (whole, exact):  # the fragment's own over its stem's
            sel = both[hit & both["decision"].isin((*kinds, "undecided"))]
            last = sel.sort_values("_order").groupby("_row").tail(1).set_index("_row")
            last = last[last["decision"] != "undecided"]  # withdrawn at this level: the level below applies
            out.loc[last.index, column] = last["decision"] if column == "decision" else last["new_label"]
    return out


def review_labels(frame: pd.DataFrame, new_label: pd.Series) -> dict[tuple[str, str], dict[str, str]]:
    """``{(subset, track): {file's stem: new label}}`` of the rows of ``frame`` that ``new_label`` (as
    :func:`latest` gives it) relabels."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    for subset, track, stem, label in zip(frame["subset"], frame["track"], frame["stem"], new_label):
        if isinstance(label, str):
            out.setdefault((subset, track), {})[stem] = label
    return out


def unmatched(frame: pd.DataFrame, decisions: pd.DataFrame) -> pd.DataFrame:
    """The decisions that name no fragment and no stem of ``frame`` (after a rescan: fragments that
    moved or tracks that are gone)."""
    if len(decisions) == 0:
        return decisions
    stems = set(zip(frame["track"], frame["subset"], frame["stem"]))
    frags = stems | set(zip(frame["track"], frame["subset"], frame["stem"], frame["start"], frame["end"]))
    keys = [
        (t, s, st) if a == WHOLE and b == WHOLE else (t, s, st, a, b)
        for t, s, st, a, b in zip(
            decisions["track"], decisions["subset"], decisions["stem"], decisions["start"], decisions["end"]
        )
    ]
    return decisions[[k not in frags for k in keys]]
