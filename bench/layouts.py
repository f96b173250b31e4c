"""Detection of corrupted fragments by dataset layout: the same corrupted songs read as MUSDB18-HQ, MoisesDB,
MedleyDB, MSST stem folders and an MSST CSV list.

Usage: python bench/layouts.py [--tracks 8] [--seconds 12] [--seed 3] [--corrupt-seed 1] [--save]
A ``curate synth`` set is corrupted (``curate corrupt``, 25 % mislabels, 25 % leaks), written in each
layout (:func:`curate.simulate.layouts.write_layout`: MoisesDB and MedleyDB split ``other`` into two
files that sum to it) and scanned with the default embedder. Every layout's fragments are matched to the
MUSDB-layout scan's (same song, stem and samples) and judged against ``corruptions.parquet``. The
layouts with track structure should read like MUSDB (MoisesDB's track ids change the order of the
label model's folds); stem folders and CSV lists have no siblings, so no leak is measured there.
Prints a table, then one JSON line: ``{"layouts": {NAME: {"auroc", "precision", "recall",
"fragments", "corrupted"}}, "auroc_ratio_no_siblings": stem-folders over musdb, "tracks", "seconds"}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import finish  # noqa: E402
from curate.data.schema import read_manifest  # noqa: E402
from curate.scan import scan  # noqa: E402
from curate.simulate.corrupt import corrupt_dataset  # noqa: E402
from curate.simulate.layouts import WRITABLE, write_layout  # noqa: E402
from curate.simulate.synth import synth_dataset  # noqa: E402
from curate.simulate.truth import manifest_truth  # noqa: E402

THRESHOLD = 0.7


def song_names(layout: str, root: Path, tracks: pd.Series) -> dict | None:
    """The layout's track names -> the songs they were written from (None: the same names)."""
    if layout == "moisesdb":
        return {d.name: json.loads((d / "data.json").read_text())["song"] for d in root.iterdir()}
    if layout in ("stem-folders", "csv"):  # <stem>/<song>.wav
        return {t: t.split("/")[-1].removesuffix(".wav") for t in tracks}
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--corrupt-seed", type=int, default=1)
    ap.add_argument("--save", action="store_true", help="write docs/benchmarks/layouts.json")
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="layouts_") as tmp:
        work = Path(tmp)
        synth_dataset(work / "clean", tracks=args.tracks, seconds=args.seconds, seed=args.seed)
        corrupt_dataset(work / "clean", work / "noisy", mislabel_rate=0.25, bleed_rate=0.25, seed=args.corrupt_seed)
        roots = {"musdb": work / "noisy"}
        roots.update({layout: write_layout(work / "noisy", work / layout, layout) for layout in WRITABLE})
        base = None
        for layout, root in roots.items():
            m = read_manifest(scan(root, output=work / f"{layout}.parquet").manifest)
            if base is None:  # the MUSDB-layout scan: the ground truth per (song, stem, start, end)
                truth = manifest_truth(m)["corrupted"]
                keys = zip(m.frame["track"], m.frame["stem"], m.frame["start"], m.frame["end"])
                base = {k: bool(v) for k, v in zip(keys, truth) if not pd.isna(v)}
            names = song_names(layout, Path(root), m.frame["track"])
            tracks = m.frame["track"].map(names) if names else m.frame["track"]
            keys = list(zip(tracks, m.frame["stem"], m.frame["start"], m.frame["end"]))
            known = np.array([k in base for k in keys])
            y = np.array([base[k] for k in keys if k in base])
            q = m.frame["quality"].to_numpy(float)[known]
            rejected = q < THRESHOLD
            results[layout] = dict(
                auroc=round(float(roc_auc_score(y, -q)), 4),
                precision=round(float((rejected & y).sum() / max(rejected.sum(), 1)), 3),
                recall=round(float((rejected & y).sum() / max(y.sum(), 1)), 3),
                fragments=int(len(y)),
                corrupted=int(y.sum()),
            )
    print(f"{args.tracks} songs of {args.seconds:g} s, corrupted (seed {args.corrupt_seed}); threshold {THRESHOLD}")
    print(f"{'layout':<14}{'auroc':>8}{'precision':>11}{'recall':>8}{'fragments':>11}{'corrupted':>11}")
    for layout, r in results.items():
        print(
            f"{layout:<14}{r['auroc']:>8.4f}{r['precision']:>11.3f}{r['recall']:>8.3f}"
            f"{r['fragments']:>11}{r['corrupted']:>11}"
        )
    figures = {
        "layouts": results,
        "auroc_ratio_no_siblings": round(results["stem-folders"]["auroc"] / results["musdb"]["auroc"], 4),
        "tracks": args.tracks,
        "seconds": args.seconds,
    }
    finish("layouts", figures, args.save)


if __name__ == "__main__":
    main()
