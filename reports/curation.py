"""``curate report``: what curation kept and rejected, why, and (with ground truth) how well.

Sections: counts per stem (kept, rejected by reason kind); histograms of ``quality`` and
``bleed_db`` per stem with the threshold marked; label vs predicted content, with the share of the
label model's training that came from the dataset itself; the lowest-quality
fragments of every stem with an audio player and a spectrogram; and, when the data root holds
``corruptions.parquet`` from ``curate corrupt``, precision, recall and the ROC curve.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from markupsafe import Markup, escape

from curate.common.errors import StemcurateError
from curate.common.outputs import check_output
from curate.data.datasets import load_segment
from curate.data.schema import CORRUPTIONS_FILE
from curate.filter import read_scored
from curate.scoring.quality import bleed_bound, reasons
from curate.simulate.truth import manifest_truth
from reports import html, plots

KIND = "curation report"
"""The kind of this report's HTML file (:func:`curate.common.outputs.file_kind`)."""


def _bleed_limit(threshold: float) -> float:
    """Bleed level (dB) at which a fragment with a certain label falls below ``threshold``."""
    return bleed_bound(min(max(threshold, 1e-6), 1 - 1e-6))


def _label_model_note(meta: dict) -> str:
    """What the label model learned from: this dataset's share of its training, the reference pool, and
    the noise rate it estimated (from the scan's manifest metadata)."""
    lm = meta.get("label_model")
    if not lm:
        return (
            '<p class="note">No label model in this manifest: labels were not scored (too few tracks or stems, or '
            "no embedder); quality uses bleed only.</p>"
        )
    share, ref, eps = lm.get("dataset_share"), lm.get("reference_units"), lm.get("noise_rate")
    parts = []
    if share is not None:
        parts.append(
            f"{100 * share:.0f} % of the label model's training came from this dataset's own fragments"
            + (f", the rest from the reference pool ({ref} clean units that are never scored)" if ref else "")
        )
    if eps is not None:
        parts.append(f"it estimates that {100 * eps:.0f} % of the stems are not what their label says")
    text = "; ".join(parts) + "."
    if share is not None and share < 0.5:
        text += (
            " With so little of its own data, the label scores rest mostly on the pretrained embedding and the "
            "reference pool."
        )
    return f'<p class="note">{escape(text[:1].upper() + text[1:])}</p>'


def _layout_note(meta: dict, frame: pd.DataFrame, kept: pd.Series) -> str:
    """What the dataset's layout lets curation see: no siblings in stem folders and CSV lists; the
    dataset's own bleed flags (MedleyDB, MoisesDB) against what the scan kept."""
    from curate.data.layouts import WITHOUT_SIBLINGS

    layout = meta.get("layout") or "musdb"
    notes = []
    if layout in WITHOUT_SIBLINGS:
        notes.append(
            f"This dataset ({layout} layout) has no track structure: a file has no siblings, so there is no bleed "
            "measure and no structural evidence. Labels rest on the per-stem evidence only: the instrument "
            "classifier, the reference pool and the pretrained embedding."
        )
    flagged = frame["dataset_bleed"].fillna(False).astype(bool) if "dataset_bleed" in frame.columns else None
    if flagged is not None and flagged.any():
        notes.append(
            f"The dataset flags bleed on {int(flagged.sum())} of {len(frame)} fragments (column dataset_bleed); "
            f"{int((flagged & ~kept).sum())} of them are rejected here, and {int((~flagged & ~kept).sum())} of the "
            "unflagged ones."
        )
    return "".join(f'<p class="note">{escape(n)}</p>' for n in notes)


def _bleed_sources(frame: pd.DataFrame, limit: float, floor_db: float = -30.0) -> str:
    """Which sibling leaks into which stem: fragments above ``floor_db``, their median and loudest level."""
    sel = frame[(frame["bleed_db"] > floor_db) & frame["bleed_stem"].notna()]
    rows = []
    for (stem, src), g in sel.groupby(["stem", "bleed_stem"], sort=True):
        total = int((frame["stem"] == stem).sum())
        rows.append(
            [
                stem,
                src,
                f"{len(g)} of {total}",
                f"{g['bleed_db'].median():.1f}",
                f"{g['bleed_db'].max():.1f}",
                int((g["bleed_db"] > limit).sum()),
                int(g["track"].nunique()),
            ]
        )
    if not rows:
        return f'<p class="note">No fragment reads any sibling above {floor_db:.0f} dB.</p>'
    return html.table(
        [
            "stem",
            "leaking sibling",
            f"fragments above {floor_db:.0f} dB",
            "median dB",
            "loudest dB",
            f"above {limit:.1f} dB (rejected)",
            "tracks",
        ],
        rows,
        numeric={3, 4, 5, 6},
    )


def _truth_section(frame: pd.DataFrame, truth: pd.DataFrame, root: Path, threshold: float) -> str:
    known = truth["corrupted"].notna().to_numpy()
    y = truth["corrupted"].to_numpy(dtype=bool, na_value=False)[known]
    score = 1.0 - frame["quality"].to_numpy(dtype=float)[known]
    flagged = frame["quality"].to_numpy(dtype=float)[known] < threshold
    if y.all() or not y.any():
        return "<h2>Against the ground truth</h2><p class=note>The ground truth has only one class here; no curves.</p>"
    tp, fp, fn = int((flagged & y).sum()), int((flagged & ~y).sum()), int((~flagged & y).sum())
    precision = tp / max(1, tp + fp)
    recall = tp / max(1, tp + fn)
    from sklearn.metrics import roc_auc_score

    auroc = roc_auc_score(y, score)
    kinds = truth["corruption_kind"].to_numpy(dtype=object)[known]
    rows = []
    for kind in sorted({k for k in kinds[y] if isinstance(k, str)}):
        sel = y & (kinds == kind)
        rows.append([kind, int(sel.sum()), f"{(flagged & sel).sum() / max(1, sel.sum()):.2f}"])
    out = [
        "<h2>Against the ground truth</h2>",
        f"<p class=note>From <code>{escape(str(root / CORRUPTIONS_FILE))}</code> "
        f"(see <code>curate/simulate/truth.py</code> for what counts as a corrupted fragment); "
        f"{int((~known).sum())} ambiguous fragments left out.</p>",
        html.cards(
            [
                ("AUROC", f"{auroc:.3f}"),
                ("precision", f"{precision:.2f}"),
                ("recall", f"{recall:.2f}"),
                ("corrupted fragments", str(int(y.sum()))),
                ("false alarms", str(fp)),
            ]
        ),
        html.img(plots.roc_pr(y, score, threshold_point=(recall, precision)), "ROC and precision-recall curves"),
        "<h3>Recall per kind of corruption</h3>",
        html.table(["kind", "fragments", "recall"], rows, numeric={1, 2}),
    ]
    return "\n".join(out)


def _lowest_section(
    frame: pd.DataFrame, root: Path, per_stem: int, clip_s: float, has_truth: pd.Series | None, unreadable: list[str]
) -> str:
    out = [
        "<h2>Lowest-quality fragments</h2>",
        f"<p class=note>The {per_stem} fragments of lowest quality per stem; the clip is the middle {clip_s:g} s of "
        f"the fragment (mono, 22 kHz).</p>",
    ]
    for stem, g in frame.groupby("stem", sort=False):
        g = g.sort_values("quality").head(per_stem)
        header = ["track", "time", "quality", "label p", "content", "bleed", "reason", "listen", "spectrogram"]
        if has_truth is not None:
            header.append("truth")
        rows = []
        for r in g.itertuples():
            sr = int(r.sample_rate)
            mid = (int(r.start) + int(r.end)) // 2
            half = int(clip_s * sr / 2)
            a, b = max(int(r.start), mid - half), min(int(r.end), mid + half)
            try:
                x, _ = load_segment(root, r.path, r.stem, a, b, need=b - a, parts=getattr(r, "parts", None))
                player = html.audio_clip(x, sr)
                spec = html.img(plots.spectrogram(x.mean(axis=0), sr), f"spectrogram of {r.track} {stem}", cls="spec")
            except StemcurateError as exc:
                unreadable.append(str(exc))
                player, spec = f"(audio missing or changed since the scan: {exc})", ""
            bleed = (
                f"{r.bleed_db:.0f} dB ({r.bleed_stem})"
                if r.bleed_db == r.bleed_db and isinstance(r.bleed_stem, str)
                else "—"
            )
            row = [
                r.track,
                f"{html.fmt_time(int(r.start), sr)}–{html.fmt_time(int(r.end), sr)}",
                f"{r.quality:.2f}",
                f"{r.label_score:.2f}" if r.label_score == r.label_score else "—",
                r.predicted_stem if isinstance(r.predicted_stem, str) else "—",
                bleed,
                r.reason or "kept",
                player,
                spec,
            ]
            if has_truth is not None:
                t = has_truth.get(r.Index)
                row.append(
                    Markup('<span class="bad">corrupted</span>')
                    if t == "corrupted"
                    else (Markup('<span class="good">clean</span>') if t == "clean" else "—")
                )
            rows.append(row)
        out += [f"<h3>{escape(stem)}</h3>", html.table(header, rows, numeric={2, 3})]
    return "\n".join(out)


def _review_section(manifest, frame: pd.DataFrame, kept: pd.Series) -> str:
    """How many calls the review (:mod:`curate.decisions`) decided, and how many of them it overturned."""
    from curate.decisions import latest, read_decisions

    decisions = read_decisions(manifest)
    if len(decisions) == 0:
        return ""
    dec = latest(frame, decisions)
    rows = []
    for kind, overturned in (
        ("keep", ~kept),  # curation rejected it
        ("reject", kept),  # curation kept it
        ("bleed_ok", ~kept),
    ):
        sel = dec["decision"] == kind
        rows.append([kind, int(sel.sum()), int((sel & overturned).sum())])
    relabel = dec["new_label"].notna()
    rows.append(["relabel", int(relabel.sum()), int((relabel & (dec["new_label"] != frame["predicted_stem"])).sum())])
    table = html.table(["decision", "fragments", "against curation's call"], rows, numeric={1, 2})
    note = (
        f'<p class="note">{len(decisions)} review decisions in {manifest}\'s decisions file; '
        "curate filter, export and repair follow them. A relabel counts against curation's call when the "
        "new label is not the stem curation predicted.</p>"
    )
    return "<h2>Review</h2>" + note + str(table)


def curation_report(
    manifest: str | Path = "manifest.parquet",
    output: str | Path = "curation_report.html",
    *,
    threshold: float = 0.7,
    data_root: str | Path | None = None,
    per_stem: int = 20,
    clip_s: float = 4.0,
    on_warning: Callable[[str], None] | None = None,
) -> Path:
    """Write the curation report of a scored manifest to ``output`` (one self-contained HTML file).
    Clips that cannot be read (a file missing or changed since the scan) are named in the report and,
    once with their count, to ``on_warning``.
    :class:`StemcurateError` for a manifest without scores, or an ``output`` that is not a report
    (:func:`curate.common.outputs.check_output`: the manifest itself, another kind of file), and for a data
    folder (``data_root``, default the manifest's) that is missing or holds none of its files."""
    output = check_output(output, KIND, inputs=[manifest])
    m = read_scored(manifest, threshold)
    root = Path(data_root) if data_root is not None else m.root
    if not root.is_dir():
        raise StemcurateError(
            f"{root}: data folder not found"
            + ("" if data_root is not None else " (moved since the scan? pass --data DIR)")
        )
    files = m.audio_files().index
    if len(files) and not any((root / p).is_file() for p in files):
        raise StemcurateError(
            f"{root}: none of the manifest's {len(files)} files is here (is it the folder that was scanned? --data)"
        )
    frame = m.frame.copy()
    why = reasons(frame, threshold)
    frame["reason"], frame["kind"] = why["reason"], why["kind"]
    stems = list(dict.fromkeys(frame["stem"]))
    kept = frame["quality"] >= threshold

    kinds = sorted(k for k in frame["kind"].dropna().unique())
    rows = []
    for s in stems:
        g = frame[frame["stem"] == s]
        rows.append(
            [
                s,
                len(g),
                int((g["quality"] >= threshold).sum()),
                *[int((g["kind"] == k).sum()) for k in kinds],
                f"{(g['quality'] < threshold).mean():.0%}",
            ]
        )
    counts = html.table(
        ["stem", "fragments", "kept", *[f"rejected: {k}" for k in kinds], "rejected"],
        rows,
        numeric=set(range(1, 4 + len(kinds))),
    )
    top_reasons = (
        frame.loc[~kept, "reason"]
        .str.replace(r"\(p=[0-9.]+\)|-?\d+ dB|lock -?[0-9.]+|[0-9.]+ ms", "…", regex=True)
        .value_counts()
        .head(8)
    )
    reason_table = html.table(
        ["reason (pattern)", "fragments"], [[r, int(n)] for r, n in top_reasons.items()], numeric={1}
    )

    qual = plots.histograms(
        {s: frame.loc[frame["stem"] == s, "quality"].to_numpy() for s in stems},
        xlabel="quality",
        marker=threshold,
        marker_label=f"threshold {threshold:g}",
        bins=np.linspace(0, 1, 21),
    )
    bleed = plots.histograms(
        {s: frame.loc[frame["stem"] == s, "bleed_db"].to_numpy() for s in stems},
        xlabel="bleed, dB re fragment",
        marker=_bleed_limit(threshold),
        marker_label=f"rejected above {_bleed_limit(threshold):.1f} dB",
    )
    classes = sorted(set(stems) | set(frame["predicted_stem"].dropna()))
    conf = plots.confusion(frame["stem"].tolist(), frame["predicted_stem"].fillna("?").tolist(), classes)

    truth_html, truth_by_row, unreadable = "", None, []
    truth = manifest_truth(m, data_root=root)
    if truth is not None:
        truth_html = _truth_section(frame, truth, root, threshold)
        t = truth["corrupted"]
        truth_by_row = pd.Series(
            np.where(t.isna(), "unknown", np.where(t.fillna(False), "corrupted", "clean")), index=frame.index
        )

    body = "\n".join(
        [
            html.cards(
                [
                    ("fragments", str(len(frame))),
                    ("kept", str(int(kept.sum()))),
                    ("rejected", str(int((~kept).sum()))),
                    ("tracks", str(frame["track"].nunique())),
                    ("threshold", f"{threshold:g}"),
                ]
            ),
            "<h2>Kept and rejected per stem</h2>",
            counts,
            "<h3>Most common reasons</h3>",
            reason_table,
            "<h2>Quality</h2>",
            str(html.img(qual, "histograms of quality per stem")),
            "<h2>Bleed</h2>",
            _layout_note(m.meta, frame, kept),
            '<p class="note">Leakage of the other stems of the track into each fragment, in dB relative to the '
            "fragment (clean stems read far below -30 dB).</p>",
            str(html.img(bleed, "histograms of bleed per stem")),
            "<h3>Which sibling leaks</h3>",
            '<p class="note">Live multitracks carry real microphone bleed and separated stems carry crosstalk; both '
            "are leaks and "
            "are flagged. To keep a known level of bleed, choose the bound knowingly: <code>curate filter --bleed-db "
            "B</code> keeps "
            "fragments with a certain label up to B dB.</p>",
            _bleed_sources(frame, _bleed_limit(threshold)),
            "<h2>Label vs predicted content</h2>",
            _label_model_note(m.meta),
            str(html.img(conf, "confusion matrix of label and predicted content")),
            _review_section(manifest, frame, kept),
            truth_html,
            _lowest_section(frame, root, per_stem, clip_s, truth_by_row, unreadable),
        ]
    )
    subtitle = f"{manifest} · data {root} · quality = label score × bleed factor · threshold {threshold:g}"
    path = html.write_page(output, html.page("Curation report", subtitle, body, kind=KIND))
    if unreadable and on_warning:
        on_warning(f"{len(unreadable)} clip(s) could not be read (first: {unreadable[0]})")
    return path
