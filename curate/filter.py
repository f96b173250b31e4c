"""``curate filter``: split a scored manifest into clean and rejected fragments."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from curate.common.atomic import ensure_writable_dir
from curate.common.errors import StemcurateError, as_number, as_path
from curate.common.outputs import check_output, output_path
from curate.data.datasets import is_stem_mp4
from curate.data.schema import Manifest, read_manifest, write_manifest
from curate.decisions import REVIEW_REASON, check_relabels, latest, read_decisions, review_labels, unmatched
from curate.scoring.bleed import FLOOR_DB
from curate.scoring.quality import BLEED_MID_DB, bleed_mid_for, quality, reasons


@dataclass
class FilterResult:
    """Kept and rejected rows (rejected with ``reason``), and where they were written."""

    kept: pd.DataFrame
    rejected: pd.DataFrame
    output: Path
    rejected_path: Path
    summary: pd.DataFrame
    unmatched: pd.DataFrame | None = None
    """Review decisions (:mod:`curate.decisions`) that name no fragment of the manifest (after a rescan)."""


def read_scored(manifest: str | Path, threshold: float) -> Manifest:
    """A scored, non-empty manifest and a threshold within 0-1, or a one-line :class:`StemcurateError`."""
    if not 0.0 <= threshold <= 1.0:
        raise StemcurateError(f"--threshold must be within 0-1, got {threshold}")
    m = read_manifest(manifest)
    if len(m.frame) == 0:
        raise StemcurateError(f"{manifest}: manifest has no fragments")
    if not m.has_scores:
        missing = m.frame["quality"].isna()
        if not missing.all():
            i = int(missing.to_numpy().argmax())
            raise StemcurateError(
                f"{manifest}: {int(missing.sum())} of {len(missing)} rows have no quality score (first: row {i}, "
                f"{m.frame['track'].iloc[i]}/{m.frame['stem'].iloc[i]}); rescan the data or fix the file"
            )
        raise StemcurateError(
            f"{manifest}: manifest has no quality scores (scanned with --no-score?); rerun `curate scan` with an "
            f"embedder"
        )
    return m


def filter_manifest(
    manifest: str | Path = "manifest.parquet",
    *,
    threshold: float = 0.7,
    output: str | Path = "clean.parquet",
    rejected: str | Path = "rejected.parquet",
    bleed_db: float | None = None,
    keep_separated: bool = False,
) -> FilterResult:
    """Keep fragments with ``quality >= threshold``; give every rejected one a ``reason``.

    ``bleed_db``: the bleed bound in dB re the fragment; ``quality`` is recomputed so that a fragment
    with a certain label is kept up to that much bleed (default: about -22.7 dB at threshold 0.7).
    ``keep_separated``: ``quality`` is recomputed without the mixture phase lock, so that stems made by a
    separator are judged like recorded ones (for training on pseudo-labels on purpose).
    Review decisions recorded beside the manifest (:mod:`curate.decisions`) override the threshold: a
    ``keep`` keeps, a ``reject`` rejects with the reason "rejected in review", a ``relabel`` keeps the
    fragment under its new label, a ``bleed_ok`` drops the bleed term from its quality.
    Raises :class:`StemcurateError` for a threshold outside 0-1 (0-1 exclusive with ``bleed_db``),
    a bound outside -80 dB (the scan's floor, no leak measured) to 0 dB, ``output`` or ``rejected``
    naming the manifest itself, a manifest without scores, relabels that leave two files of a track
    under one label, or a result with no fragment kept (nothing is written then).
    """
    manifest = as_path(manifest, "manifest")
    output, rejected = output_path(as_path(output, "output")), output_path(as_path(rejected, "rejected"))
    threshold = as_number(threshold, "--threshold")
    bleed_db = None if bleed_db is None else as_number(bleed_db, "--bleed-db")
    if output.resolve() == rejected.resolve():
        raise StemcurateError(f"{output}: clean and rejected outputs must differ")
    for p in (output, rejected):
        if p.resolve() == Path(manifest).resolve():
            raise StemcurateError(f"{p}: is the manifest being filtered; write the result to another file")
        check_output(p, "manifest")
    m = read_scored(manifest, threshold)
    for p in (output, rejected):
        ensure_writable_dir(p)
    frame = m.frame.copy()
    mid = BLEED_MID_DB
    if bleed_db is not None:
        if not np.isfinite(bleed_db) or bleed_db > 0 or bleed_db <= FLOOR_DB:
            raise StemcurateError(
                f"--bleed-db must be a level in dB between {FLOOR_DB:g} (the scan's floor: no leak measured) "
                f"and 0, got {bleed_db}"
            )
        try:
            mid = bleed_mid_for(bleed_db, threshold)
        except ValueError as exc:
            raise StemcurateError(f"--bleed-db: {exc}") from None
    if bleed_db is not None or keep_separated:
        frame["quality"] = quality(
            frame["label_score"],
            frame["bleed_db"],
            frame["separation_db"],
            frame["mixture_lock"],
            bleed_mid_db=mid,
            keep_separated=keep_separated,
        )
    decisions = read_decisions(manifest)
    frame, keep, why, dec = apply_review(
        frame, decisions, threshold, bleed_mid_db=mid, keep_separated=keep_separated, where=manifest
    )
    relabel = dec["new_label"].notna().to_numpy()
    frame.loc[relabel, "stem"] = dec["new_label"][relabel]
    kept, rej = frame[keep].copy(), frame[~keep].copy()
    if len(kept) == 0:
        raise StemcurateError(
            f"{manifest}: no fragment reaches quality {threshold} (median {frame['quality'].median():.2f}); "
            "lower --threshold or check the data (curate report)"
        )
    kept["reason"] = None
    meta = {
        **m.meta,
        "filter": {
            "threshold": threshold,
            "bleed_db": bleed_db,
            "keep_separated": keep_separated,
            "source": str(Path(manifest)),
            "review": {
                **{k: int(v) for k, v in dec["decision"].value_counts().items()},
                "relabel": int(relabel.sum()),
            },
        },
    }
    write_manifest(kept, output, root=m.root, meta=meta)
    write_manifest(rej, rejected, root=m.root, meta=meta)
    kinds = why.loc[rej.index, "kind"].where(rej["reason"] != REVIEW_REASON, "review")
    summary = (
        pd.DataFrame({"kept": kept.groupby("stem").size()})
        .join(pd.crosstab(rej["stem"], kinds) if len(rej) else pd.DataFrame(), how="outer")
        .fillna(0)
        .astype(int)
    )
    return FilterResult(kept, rej, output, rejected, summary, unmatched(m.frame, decisions))


def apply_review(
    frame: pd.DataFrame, decisions: pd.DataFrame, threshold: float, *, bleed_mid_db: float, keep_separated: bool, where
) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame, pd.DataFrame]:
    """The threshold's call on every fragment of a scored ``frame``, overridden by the review's
    ``decisions`` (:mod:`curate.decisions`): ``(frame with quality and reason, kept mask, reasons
    (:func:`curate.scoring.quality.reasons`), the decisions each row follows (:func:`curate.decisions.latest`:
    ``decision`` and ``new_label``))``. The frame's stems are left as
    they are. :class:`StemcurateError` (naming ``where``) for a relabel of a ``.stem.mp4`` stream or
    relabels that leave two files of a track under one label."""
    frame = frame.copy()
    dec = latest(frame, decisions)
    ok = (dec["decision"] == "bleed_ok").to_numpy()
    if ok.any():  # the leak is acceptable for these stems: quality without the bleed term
        sel = frame.loc[ok]
        frame.loc[ok, "quality"] = quality(
            sel["label_score"],
            np.full(len(sel), FLOOR_DB),
            sel["separation_db"],
            sel["mixture_lock"],
            bleed_mid_db=bleed_mid_db,
            keep_separated=keep_separated,
        )
    why = reasons(frame, threshold, bleed_mid_db=bleed_mid_db, keep_separated=keep_separated)
    frame["reason"] = why["reason"]
    reviewed_out = (dec["decision"] == "reject").to_numpy()
    frame.loc[reviewed_out, "reason"] = REVIEW_REASON
    relabel = dec["new_label"].notna().to_numpy()
    check_relabels(frame, dec["new_label"], where)
    keep = ((frame["quality"] >= threshold) | (dec["decision"] == "keep").to_numpy() | relabel) & ~reviewed_out
    return frame, keep, why, dec


def kept_and_rejected(
    manifest: str | Path, *, threshold: float | None = None
) -> tuple[Manifest, pd.DataFrame, pd.DataFrame, float, dict]:
    """``(manifest, kept rows, rejected rows, threshold used, labels)`` of a scored manifest
    (``threshold``, default 0.7, and the review's decisions, as :func:`filter_manifest` keeps), or of the
    kept manifest of ``curate filter`` (then the rejected rows come from the scored manifest it was made
    from, at filter's threshold). Rows keep the stems of their files; ``labels`` maps ``(subset, track)``
    to ``{file's stem: label the review gave it}``. :class:`StemcurateError` for a manifest without
    scores, filter's rejected list, another threshold than filter's with its kept manifest, or a kept
    manifest whose source cannot be read."""
    m = read_scored(manifest, 0.7 if threshold is None else threshold)  # curate filter's rules for its input
    frame = m.frame
    made_by = m.meta.get("filter") or {}
    source = made_by.get("source")
    if source is None:
        threshold = 0.7 if threshold is None else threshold
        decisions = read_decisions(manifest)
        frame, keep, _, dec = apply_review(
            frame, decisions, threshold, bleed_mid_db=BLEED_MID_DB, keep_separated=False, where=manifest
        )
        return m, frame[keep], frame[~keep], float(threshold), review_labels(frame, dec["new_label"])
    used = float(made_by.get("threshold", 0.7))
    if threshold is not None and threshold != used:
        raise StemcurateError(
            f"{manifest}: curate filter kept these fragments at threshold {used:g}; to export at {threshold:g}, "
            f"export the scored manifest ({source})"
        )
    if "reason" in frame.columns and frame["reason"].notna().any():
        raise StemcurateError(f"{manifest}: is curate filter's list of rejected fragments; export the kept one")
    candidates = [Path(source)] if Path(source).is_absolute() else [Path(source), Path(manifest).parent / source]
    src = next((p for p in candidates if p.is_file()), None)
    if src is None:
        raise StemcurateError(
            f"{manifest}: made by curate filter from {source}, which cannot be read; export the scored manifest"
        )
    if len(read_decisions(manifest)):
        raise StemcurateError(
            f"{manifest}: has review decisions of its own; they belong with the scored manifest it was filtered "
            f"from ({source}): record them there and filter again, or export the scored manifest"
        )
    full = read_manifest(src).frame
    new_label = latest(full, read_decisions(src))["new_label"]
    # a relabelled row of the kept manifest carries its new label: matched by its file (a .stem.mp4 stream,
    # never relabelled, by its stem too)
    key = ["track", "subset", "path", "start", "end", "_stream"]
    stream = lambda f: f["stem"].where(f["path"].astype(str).map(is_stem_mp4), "")  # noqa: E731
    a, b = full.assign(_stream=stream(full)), frame.assign(_stream=stream(frame))
    seen = (a[key].merge(b[key].drop_duplicates(), how="left", on=key, indicator=True)["_merge"] == "both").to_numpy()
    return m, full[seen], full[~seen], used, review_labels(full, new_label)
