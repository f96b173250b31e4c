"""Detection benchmark: how well does `curate scan` + `curate filter` find corrupted fragments?

Renders a realistic dataset with ../shared/tools/render_multitracks.py (or uses `curate synth`),
corrupts it with `curate corrupt`, scans it, filters at --threshold, and compares with the truth
table (see curate/truth.py for what counts as a corrupted fragment).

Usage: python bench/detection.py [--source rendered|synth] [--tracks 16] [--seconds 20]
       [--mislabel-rate 0.2] [--bleed-rate 0.2] [--seed 0] [--corrupt-seeds 0,1,2] [--jobs 2]
       [--threshold 0.7] [--save]
Each corruption seed gives an independent noisy copy of the same clean data; AUROC is averaged,
precision and recall are pooled over all copies.
Prints tables, then one JSON line: {"auroc", "precision", "recall", "recall_by_kind", "scan_x_realtime", ...}.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import finish, render  # noqa: E402
from curate.classify import LabelModelConfig  # noqa: E402
from curate.corrupt import corrupt_dataset  # noqa: E402
from curate.scan import ScoreConfig, scan  # noqa: E402
from curate.schema import read_corruptions  # noqa: E402
from curate.synth import synth_dataset  # noqa: E402
from curate.truth import fragment_truth  # noqa: E402

def make_clean(kind: str, out: Path, tracks: int, seconds: float, seed: int) -> None:
    if kind == "synth":
        synth_dataset(out, tracks=tracks, seconds=seconds, seed=seed)
    else:
        render(out, train=tracks, seconds=seconds, seed=seed)


def evaluate(frame: pd.DataFrame, truth: pd.DataFrame, threshold: float) -> dict:
    """AUROC of 1 - quality, precision/recall of quality < threshold, recall per kind."""
    known = truth["corrupted"].notna().to_numpy()
    y = truth["corrupted"].to_numpy(dtype=bool, na_value=False)[known]
    q = frame["quality"].to_numpy(dtype=float)[known]
    flagged = q < threshold
    tp, fp, fn = int((flagged & y).sum()), int((flagged & ~y).sum()), int((~flagged & y).sum())
    kinds = truth["corruption_kind"].to_numpy()[known]
    by_kind, count_by_kind = {}, {}
    for k in ("swap", "replace", "partial", "bleed"):
        sel = np.array([isinstance(v, str) and k in v.split("+") for v in kinds])
        if sel.any():
            by_kind[k] = round(float(flagged[sel].mean()), 3)
            count_by_kind[k] = int(sel.sum())
    return {
        "auroc": round(float(roc_auc_score(y, 1 - q)), 4) if 0 < y.sum() < len(y) else None,
        "precision": round(tp / max(tp + fp, 1), 3),
        "recall": round(tp / max(tp + fn, 1), 3),
        "recall_by_kind": by_kind,
        "count_by_kind": count_by_kind,
        "fragments": int(len(frame)), "corrupted": int(y.sum()), "ambiguous": int((~known).sum()),
        "flagged": int(flagged.sum()), "true_pos": tp, "false_pos": fp,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", choices=["rendered", "synth"], default="rendered")
    ap.add_argument("--tracks", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--mislabel-rate", type=float, default=0.2)
    ap.add_argument("--bleed-rate", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0, help="seed of the rendering and the label model")
    ap.add_argument("--corrupt-seeds", type=lambda v: [int(x) for x in v.split(",")], default=[0, 1, 2], help="comma-separated corruption seeds")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--threshold", type=float, default=0.7)
    ap.add_argument("--model", default="logreg", help="label model classifier: logreg, forest, ensemble")
    ap.add_argument("--pooling", type=float, default=None, help="label model stem pooling weight (default: the library's)")
    ap.add_argument("--temperature", type=float, default=None, help="label model temperature (default: the library's)")
    ap.add_argument("--eps", type=float, default=None, help="label model prior error rate (default: estimated)")
    ap.add_argument("--foreign-prior", type=float, default=None, help="label model same-class foreign prior")
    ap.add_argument("--no-relative", action="store_true", help="label model without track-relative features")
    ap.add_argument("--swap-bonus", type=float, default=None, help="label model prior factor for swaps")
    ap.add_argument("--rounds", type=int, default=None, help="label model rounds (2: refit without doubtful units)")
    ap.add_argument("--keep", type=Path, help="keep the datasets and manifest in this folder")
    ap.add_argument("--save", action="store_true", help="write docs/benchmarks/detection[_synth].json")
    args = ap.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-detection-"))
    clean = work / "clean"
    t0 = time.perf_counter()
    if not clean.exists():
        make_clean(args.source, clean, args.tracks, args.seconds, args.seed)
    prep = time.perf_counter() - t0
    runs, scored = [], []
    for seed in args.corrupt_seeds:
        noisy = work / f"noisy{seed}"
        if noisy.exists():
            shutil.rmtree(noisy)
        corrupt_dataset(clean, noisy, mislabel_rate=args.mislabel_rate, bleed_rate=args.bleed_rate, seed=seed)
        t1 = time.perf_counter()
        labels = LabelModelConfig(model=args.model, seed=args.seed, **{k: v for k, v in (("stem_pooling", args.pooling), ("temperature", args.temperature), ("prior_error", args.eps), ("foreign_prior", args.foreign_prior), ("relative", False if args.no_relative else None), ("swap_bonus", args.swap_bonus), ("rounds", args.rounds)) if v is not None})
        result = scan(noisy, output=work / f"manifest{seed}.parquet", score=ScoreConfig(labels=labels), jobs=args.jobs)
        scan_s = time.perf_counter() - t1
        frame = result.fragments
        truth = fragment_truth(frame, read_corruptions(noisy / "corruptions.parquet"), data_root=noisy)
        fig = evaluate(frame, truth, args.threshold)
        fig["scan_x_realtime"] = round(result.tracks * 4 * args.seconds / scan_s, 1)
        runs.append(fig)
        both = pd.concat([frame, truth], axis=1)
        both["corrupt_seed"] = seed
        scored.append(both)
        print(f"corruption seed {seed}: auroc {fig['auroc']}, precision {fig['precision']}, recall {fig['recall']}, by kind {fig['recall_by_kind']}, counts {fig['count_by_kind']}")
    both = pd.concat(scored, ignore_index=True)
    pooled = evaluate(both, both[["corrupted", "corruption_kind"]], args.threshold)
    fig = {
        "auroc": round(float(np.mean([r["auroc"] for r in runs])), 4),
        "precision": pooled["precision"], "recall": pooled["recall"],
        "recall_by_kind": pooled["recall_by_kind"], "count_by_kind": pooled["count_by_kind"],
        "scan_x_realtime": round(float(np.mean([r["scan_x_realtime"] for r in runs])), 1),
        "per_seed": [{k: r[k] for k in ("auroc", "precision", "recall", "recall_by_kind")} for r in runs],
        "source": args.source, "tracks": args.tracks, "seconds": args.seconds, "threshold": args.threshold,
        "corrupt_seeds": args.corrupt_seeds, "fragments": pooled["fragments"], "corrupted": pooled["corrupted"],
        "false_pos": pooled["false_pos"], "true_pos": pooled["true_pos"],
    }
    print(f"\n{args.source}: {args.tracks} tracks x {args.seconds:g} s (prepared in {prep:.0f} s), mislabel {args.mislabel_rate}, bleed {args.bleed_rate}, corruption seeds {args.corrupt_seeds}")
    print(f"scan: {fig['scan_x_realtime']}x real time over all stems ({args.jobs} jobs)")
    print(f"{pooled['fragments']} fragments, {pooled['corrupted']} corrupted, {pooled['ambiguous']} ambiguous (left out)")
    print(f"{'metric':<22}{'value':>8}")
    print(f"{'auroc (mean of seeds)':<22}{fig['auroc']:>8}")
    for k in ("precision", "recall"):
        print(f"{k + ' (pooled)':<22}{fig[k]:>8}")
    for k, v in fig["recall_by_kind"].items():
        print(f"{'recall ' + k:<22}{v:>8}   (n={fig['count_by_kind'][k]})")
    print("\nquality quartiles per kind:")
    print(both.groupby(both["corruption_kind"].fillna("clean"))["quality"].describe()[["count", "25%", "50%", "75%"]].round(3).to_string())
    if args.keep:
        both.to_parquet(work / "scored.parquet")
    else:
        shutil.rmtree(work, ignore_errors=True)
    finish("detection" if args.source == "rendered" else "detection_synth", fig, args.save)


if __name__ == "__main__":
    main()
