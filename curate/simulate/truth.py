"""Fragment-level ground truth from ``curate corrupt``'s ``corruptions.parquet``.

A fragment is *corrupted* when its stem was swapped, replaced or replaced by a separator's estimate
(``separated``), when a partial replacement covers
at least ``min_overlap`` of it, or when its stem received a leak that is actually present in it:
the leak level scaled by how loud the leaking and the receiving stems are in this fragment
compared with their whole-stem RMS must reach ``min_leak_db`` (checked when ``data_root`` is
given; a leak whose source is silent in a fragment does not corrupt it). The siblings of one leak
(a ``room`` leak has several) add up in power.
Fragments that a partial replacement touches by less than ``min_overlap`` are *ambiguous*
(``corrupted`` is NA) and left out of precision/recall.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from curate.data.datasets import load_segment
from curate.simulate.corrupt import LEAK_KINDS, SEPARATED


def fragment_truth(
    frame: pd.DataFrame,
    corruptions: pd.DataFrame,
    *,
    data_root=None,
    min_overlap: float = 0.25,
    min_leak_db: float = -25.0,
) -> pd.DataFrame:
    """Columns ``corrupted`` (nullable bool), ``corruption_kind`` and ``corruption_source`` (the stems
    whose content is wrongly in the fragment, comma-separated) for each manifest row."""
    corrupted = pd.array([False] * len(frame), dtype="boolean")
    kinds: list[str | None] = [None] * len(frame)
    sources: list[str | None] = [None] * len(frame)
    by_stem = {k: g for k, g in corruptions.groupby(["track", "stem"])}
    rms_cache: dict = {}

    def stem_rms(track, stem, path):
        if (track, stem) not in rms_cache:
            x, _ = load_segment(data_root, path, stem, 0, None)
            rms_cache[(track, stem)] = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
        return rms_cache[(track, stem)]

    for pos, r in enumerate(frame.itertuples()):
        rows = by_stem.get((r.track, r.stem))
        if rows is None:
            continue
        found, ambiguous, src = [], False, set()
        leaks: dict[str, list[tuple[float, str | None]]] = {}  # per leak kind: (level in dB, source stem)
        for c in rows.itertuples():
            overlap = max(0, min(r.end, c.end) - max(r.start, c.start)) / (r.end - r.start)
            if c.kind in ("swap", "replace", SEPARATED):
                found.append(c.kind)
                src.add(getattr(c, "source_stem", None))
            elif c.kind == "partial":
                if overlap >= min_overlap:
                    found.append("partial")
                    src.add(getattr(c, "source_stem", None))
                elif overlap > 0:
                    ambiguous = True
            elif c.kind in LEAK_KINDS and overlap > 0:
                level = c.leak_db
                if data_root is not None:
                    folder, ext = r.path.rsplit("/", 1)[0], r.path.rsplit(".", 1)[-1]
                    src_path = f"{folder}/{c.source_stem}.{ext}"
                    x, _ = load_segment(data_root, src_path, c.source_stem, r.start, r.end, need=r.end - r.start)
                    y, _ = load_segment(data_root, r.path, r.stem, r.start, r.end, need=r.end - r.start)
                    src_rel = float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) / max(
                        stem_rms(r.track, c.source_stem, src_path), 1e-12
                    )
                    rcv_rel = float(np.sqrt(np.mean(y.astype(np.float64) ** 2))) / max(
                        stem_rms(r.track, r.stem, r.path), 1e-12
                    )
                    level = c.leak_db + 20 * np.log10(max(src_rel, 1e-9) / max(rcv_rel, 1e-9))
                leaks.setdefault(c.kind, []).append((float(level), getattr(c, "source_stem", None)))
        for kind, parts in leaks.items():  # the siblings of one leak add up in power
            levels = np.array([lv for lv, _ in parts])
            if data_root is None or 10 * np.log10(np.sum(10 ** (levels / 10))) >= min_leak_db:
                found.append(kind)
                src |= {s for lv, s in parts if lv >= min_leak_db - 10}
        if found:
            corrupted[pos] = True
            kinds[pos] = "+".join(sorted(set(found)))
            sources[pos] = ",".join(sorted(s for s in src if s))
        elif ambiguous:
            corrupted[pos] = pd.NA
            kinds[pos] = "partial<min_overlap"
    return pd.DataFrame(
        {"corrupted": corrupted, "corruption_kind": kinds, "corruption_source": sources}, index=frame.index
    )


def manifest_truth(manifest, *, data_root=None) -> pd.DataFrame | None:
    """Ground truth per row of ``manifest`` (a :class:`~curate.data.schema.Manifest`), or None when there is none:
    its own ``corrupted`` (and ``corruption_source``, ``corruption_kind``) columns when it has them,
    else :func:`fragment_truth` of ``<data root>/corruptions.parquet`` written by ``curate corrupt``
    (``data_root``, default the manifest's). The one source of truth for training, the reports and
    the benchmarks."""
    from pathlib import Path

    from curate.data.schema import CORRUPTIONS_FILE, read_corruptions

    frame = manifest.frame
    if "corrupted" in frame.columns:
        return frame[[c for c in ("corrupted", "corruption_kind", "corruption_source") if c in frame.columns]]
    root = Path(data_root) if data_root is not None else manifest.root
    if not (root / CORRUPTIONS_FILE).is_file():
        return None
    return fragment_truth(frame, read_corruptions(root / CORRUPTIONS_FILE), data_root=root)
