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

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from curate.common.errors import StemcurateError, as_path
from curate.common.lock import exclusive
from curate.data.schema import write_parquet

DECISIONS = ("keep", "reject", "relabel", "bleed_ok", "undecided")
WHOLE = -1
"""``start`` and ``end`` of a decision about a whole stem."""
REVIEW_REASON = "rejected in review"
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
        if self.decision == "relabel" and self.new_label == self.stem:
            raise StemcurateError(f"relabel {self.track}/{self.stem}: the new label is the label it has")
        whole = self.start == WHOLE and self.end == WHOLE
        if not whole and not 0 <= self.start < self.end:
            raise StemcurateError(f"decision on {self.track}/{self.stem}: start {self.start}, end {self.end}")


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
    if bad.any():
        raise StemcurateError(f"{path}: row {int(bad.to_numpy().argmax())}: unknown decision")
    return frame


def record(manifest: str | Path, decisions: list[Decision]) -> Path:
    """Append ``decisions`` to the manifest's decisions file, atomically and under its lock (waiting up to
    10 s for another writer); the file's path."""
    manifest = as_path(manifest, "manifest")
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
