"""Detection benchmark: how well does `curate scan` + `curate filter` find corrupted fragments?

Data (--data): ``rendered`` songs (../shared/tools/render_multitracks.py), ``synth`` (`curate synth`),
or ``real``: the 94 real MUSDB18 excerpts of ../shared/data/musdb18-7s/train (6.8 s each, decoded
once to WAV; a default scan gives one 6-s fragment, two 3-s units, per stem: nothing is looped).
Each run scans the clean data once (per-unit out-of-fold accuracy of the label model's classifier,
clean false-rejection rate with every rejection and its reason), then, per corruption seed, a
`curate corrupt` copy (see curate/simulate/truth.py for what counts as a corrupted fragment): AUROC of
1 - quality, precision and recall of quality < --threshold, recall per kind, clean fragments rejected and
the collateral: clean fragments rejected in a track that holds a corrupted stem (the innocent sibling
blamed), as a share of the clean fragments and of the false rejections. Side by side on the same
out-of-fold probabilities, on label corruptions alone (leak-only fragments left out):
`cleanlab.filter.find_label_issues` (filter_by='both', a benchmark-only peer) on the first and on
the last round's probabilities, against ``label_score < threshold``.

Usage: python bench/detection.py [--data rendered|synth|real] [--tracks 16] [--seconds 20]
       [--mislabel-rate 0.2] [--bleed-rate 0.2] [--kinds swap,replace,...] [--seed 0] [--corrupt-seeds 0,1,2] [--jobs 2]
       [--threshold 0.7] [--embedder NAME] [--keep DIR] [--save]
AUROC is averaged over the corruption seeds, precision and recall are pooled over all copies.
Prints tables, then one JSON line: {"auroc", "precision", "recall", "recall_by_kind", "unit_accuracy",
"unit_accuracy_by_class", "clean_false_rejection", "noisy_clean_rejected", "collateral", "x_realtime", ...}.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO, finish, render  # noqa: E402
from curate.common.cliutil import parse_list  # noqa: E402
from curate.data import audio  # noqa: E402
from curate.data.datasets import discover  # noqa: E402
from curate.data.schema import read_manifest  # noqa: E402
from curate.scan import scan  # noqa: E402
from curate.scantrack import ScoreConfig  # noqa: E402
from curate.scoring.bleed import BleedConfig  # noqa: E402
from curate.scoring.embed import DEFAULT_EMBEDDER, EMBEDDERS  # noqa: E402
from curate.scoring.labelmodel import LabelModelConfig, split_units  # noqa: E402
from curate.scoring.quality import reasons  # noqa: E402
from curate.simulate.corrupt import KINDS, LEAK_KINDS, STEM_KINDS, corrupt_dataset  # noqa: E402
from curate.simulate.synth import synth_dataset  # noqa: E402
from curate.simulate.truth import manifest_truth  # noqa: E402

REAL = REPO.parent / "shared" / "data" / "musdb18-7s"
LABEL_KINDS = ("swap", "replace", "partial")


def decode_real(out: Path, limit: int | None = None) -> None:
    """The real MUSDB18 excerpts as WAV folders (``out/train/<track>/<stem>.wav``, 16-bit)."""
    tracks = discover(REAL, subset="train")[:limit]
    for t in tracks:
        stems, sr = t.load_all()
        for name, x in stems.items():
            audio.write(out / "train" / t.name / f"{name}.wav", x, sr, subtype="PCM_16")


def make_clean(kind: str, out: Path, tracks: int, seconds: float, seed: int) -> None:
    if kind == "synth":
        synth_dataset(out, tracks=tracks, seconds=seconds, seed=seed)
    elif kind == "real":
        decode_real(out, limit=tracks)
    else:
        render(out, train=tracks, seconds=seconds, seed=seed)


def unit_accuracy(result) -> tuple[float, dict]:
    """Share of units whose first-round out-of-fold prediction is their label, overall and per class."""
    lab = result.labels
    truth = lab.units["stem"].to_numpy()
    pred = np.asarray(lab.classes)[lab.first_proba.argmax(axis=1)]
    by = {c: round(float(np.mean(pred[truth == c] == c)), 3) for c in lab.classes}
    return round(float(np.mean(pred == truth)), 3), by


def label_issue_flags(result, threshold: float, units: int) -> dict[str, np.ndarray]:
    """Per fragment: flagged by ``label_score < threshold`` and by cleanlab on the first and last round's
    out-of-fold probabilities (a fragment is flagged when either of its units is)."""
    from cleanlab.filter import find_label_issues

    lab = result.labels
    frame = result.fragments
    _, _, unit_of = split_units(frame, {}, units=units)
    y = np.searchsorted(lab.classes, lab.units["stem"].to_numpy())
    out = {"label_score": frame["label_score"].to_numpy(dtype=float) < threshold}
    for name, proba in (("cleanlab_first", lab.first_proba), ("cleanlab_last", lab.proba)):
        issues = find_label_issues(y, proba, filter_by="both")
        out[name] = issues[unit_of].any(axis=1)
    return out


def pr(flags: np.ndarray, y: np.ndarray) -> dict:
    tp, fp, fn = int((flags & y).sum()), int((flags & ~y).sum()), int((~flags & y).sum())
    return {
        "precision": round(tp / max(tp + fp, 1), 3),
        "recall": round(tp / max(tp + fn, 1), 3),
        "flagged": int(flags.sum()),
    }


def evaluate(frame: pd.DataFrame, truth: pd.DataFrame, threshold: float) -> dict:
    """AUROC of 1 - quality, precision/recall of quality < threshold, recall per kind."""
    known = truth["corrupted"].notna().to_numpy()
    y = truth["corrupted"].to_numpy(dtype=bool, na_value=False)[known]
    q = frame["quality"].to_numpy(dtype=float)[known]
    flagged = q < threshold
    tp, fp, fn = int((flagged & y).sum()), int((flagged & ~y).sum()), int((~flagged & y).sum())
    kinds = truth["corruption_kind"].to_numpy()[known]
    # collateral: clean fragments rejected in a track that holds a corrupted stem (the innocent sibling blamed)
    tracks = frame["track"].to_numpy()[known]
    bad_tracks = set(tracks[y])
    false_rej = flagged & ~y
    in_bad = np.array([t in bad_tracks for t in tracks], dtype=bool)
    clean_n = int((~y).sum())
    by_kind, count_by_kind = {}, {}
    for k in STEM_KINDS + LEAK_KINDS:
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
        "fragments": int(len(frame)),
        "corrupted": int(y.sum()),
        "ambiguous": int((~known).sum()),
        "flagged": int(flagged.sum()),
        "true_pos": tp,
        "false_pos": fp,
        "clean_rejected": round(fp / max(clean_n, 1), 4),
        "collateral": round(int((false_rej & in_bad).sum()) / max(clean_n, 1), 4),
        "collateral_share": round(int((false_rej & in_bad).sum()) / max(fp, 1), 3),
    }


def bleed_config(settings: list[str]) -> BleedConfig:
    """:class:`BleedConfig` with ``FIELD=VALUE`` settings (numbers, true/false)."""
    fields = {f.name: f.type for f in dataclasses.fields(BleedConfig)}
    values = {}
    for item in settings:
        name, _, raw = item.partition("=")
        if name not in fields or not raw:
            raise SystemExit(f"--bleed {item}: expected FIELD=VALUE with FIELD one of {', '.join(fields)}")
        kind = fields[name]
        values[name] = raw.lower() == "true" if kind == "bool" else int(raw) if kind == "int" else float(raw)
    return BleedConfig(**values)


def stem_seconds(root: Path) -> float:
    """Seconds of audio over all stems (not the mixture) of the train subset."""
    total = 0.0
    for t in discover(root, subset="train"):
        for name in t.stems:
            if name != "mixture":
                i = audio.info(t.source(name).path)
                total += i.frames / i.sample_rate
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", "--source", dest="data", choices=["rendered", "synth", "real"], default="rendered")
    ap.add_argument("--tracks", type=int, default=None, help="tracks (default: 16; real: all 94)")
    ap.add_argument("--seconds", type=float, default=20.0, help="seconds per track (rendered, synth)")
    ap.add_argument("--mislabel-rate", type=float, default=None, help="default 0.2 (real: 0.3)")
    ap.add_argument("--bleed-rate", type=float, default=None, help="default 0.2 (real: 0.3)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the rendering and the label model")
    ap.add_argument(
        "--corrupt-seeds",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[0, 1, 2],
        help="comma-separated corruption seeds",
    )
    ap.add_argument(
        "--kinds",
        type=lambda v: parse_list(v, "--kinds"),
        default=list(KINDS),
        help=f"corruption kinds drawn (default all: {','.join(KINDS)})",
    )
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--threshold", type=float, default=0.7)
    ap.add_argument("--embedder", choices=EMBEDDERS, default=DEFAULT_EMBEDDER)
    ap.add_argument("--no-reference-pool", action="store_true", help="leave out the shipped reference pool")
    ap.add_argument("--model", default="logreg", help="label model classifier: logreg, forest, ensemble")
    ap.add_argument("--rounds", type=int, default=None, help="label model rounds (default: the library's)")
    ap.add_argument(
        "--units", type=int, default=None, help="label model units per fragment, 2 or 3 (default: the library's)"
    )
    ap.add_argument(
        "--max-eps", type=float, default=None, help="label model cap of the EM noise rate (default: the library's)"
    )
    ap.add_argument(
        "--bleed",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="leak model setting other than the library's (repeatable), e.g. late_frames=false",
    )
    ap.add_argument(
        "--keep", type=Path, help="keep the datasets and manifests in this folder (and reuse the clean data)"
    )
    ap.add_argument(
        "--save",
        action="store_true",
        help="write docs/benchmarks/detection[_synth|_real][_mM_bB].json (_mM_bB: other than the default rates)",
    )
    args = ap.parse_args()
    real = args.data == "real"
    tracks = args.tracks or (94 if real else 16)
    mislabel = args.mislabel_rate if args.mislabel_rate is not None else (0.3 if real else 0.2)
    bleed = args.bleed_rate if args.bleed_rate is not None else (0.3 if real else 0.2)

    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-detection-"))
    clean = work / "clean"
    t0 = time.perf_counter()
    if not clean.exists():
        make_clean(args.data, clean, tracks, args.seconds, args.seed)
    prep = time.perf_counter() - t0
    overrides = {
        k: v
        for k, v in (("rounds", args.rounds), ("max_prior_error", args.max_eps), ("units", args.units))
        if v is not None
    }
    labels = LabelModelConfig(model=args.model, seed=args.seed, **overrides)
    score = ScoreConfig(
        embedder=args.embedder, labels=labels, reference_pool=not args.no_reference_pool, bleed=bleed_config(args.bleed)
    )
    audio_s = stem_seconds(clean)

    # the clean data: classifier accuracy and false rejections
    t1 = time.perf_counter()
    clean_scan = scan(clean, output=work / "manifest_clean.parquet", score=score, jobs=args.jobs)
    scan_s = time.perf_counter() - t1
    acc, acc_by = unit_accuracy(clean_scan)
    cf = clean_scan.fragments
    why = reasons(cf, args.threshold)
    rejected = cf["quality"].to_numpy(dtype=float) < args.threshold
    rej = cf.loc[rejected, ["track", "stem", "quality"]].assign(reason=why.loc[rejected, "reason"].to_numpy())
    fig_clean = {
        "unit_accuracy": acc,
        "unit_accuracy_by_class": acc_by,
        "clean_false_rejection": round(float(rejected.mean()), 4),
        "clean_fragments": int(len(cf)),
        "clean_rejected": int(rejected.sum()),
        "x_realtime": round(audio_s / scan_s, 1),
    }
    print(
        f"clean scan: {len(cf)} fragments, {clean_scan.labels.units.shape[0]} units, {audio_s:.0f} s of stems in "
        f"{scan_s:.1f} s "
        f"({fig_clean['x_realtime']}x real time, {args.jobs} jobs, embedder {args.embedder})"
    )
    print(f"unit accuracy (out of fold, first round) {acc}: " + ", ".join(f"{k} {v}" for k, v in acc_by.items()))
    print(f"false rejections at {args.threshold}: {int(rejected.sum())} of {len(cf)} ({100 * rejected.mean():.1f} %)")
    if len(rej):
        print(rej.sort_values(["track", "stem"]).to_string(index=False))

    runs, scored = [], []
    for seed in args.corrupt_seeds:
        noisy = work / f"noisy{seed}"
        if noisy.exists():
            shutil.rmtree(noisy)
        corrupt_dataset(clean, noisy, mislabel_rate=mislabel, bleed_rate=bleed, seed=seed, kinds=args.kinds)
        result = scan(noisy, output=work / f"manifest{seed}.parquet", score=score, jobs=args.jobs)
        frame = result.fragments
        truth = manifest_truth(read_manifest(result.manifest))
        fig = evaluate(frame, truth, args.threshold)
        runs.append(fig)
        both = pd.concat([frame, truth], axis=1)
        both["corrupt_seed"] = seed
        for name, flags in label_issue_flags(result, args.threshold, labels.units).items():
            both[f"flag_{name}"] = flags
        scored.append(both)
        print(
            f"corruption seed {seed}: auroc {fig['auroc']}, precision {fig['precision']}, recall {fig['recall']}, by "
            f"kind {fig['recall_by_kind']}, counts {fig['count_by_kind']}, clean rejected {fig['clean_rejected']}, "
            f"collateral {fig['collateral']} ({fig['collateral_share']} of false rejections)"
        )
    both = pd.concat(scored, ignore_index=True)
    pooled = evaluate(both, both[["corrupted", "corruption_kind"]], args.threshold)

    # label corruptions alone: leak-only fragments left out
    kinds = both["corruption_kind"].fillna("")
    has_label = kinds.map(lambda v: any(k in v.split("+") for k in LABEL_KINDS)).to_numpy()
    leak_only = both["corrupted"].fillna(False).to_numpy(bool) & ~has_label
    sel = both["corrupted"].notna().to_numpy() & ~leak_only
    y_label = has_label[sel]
    label_side = {}
    for name in ("label_score", "cleanlab_first", "cleanlab_last"):
        label_side[name] = pr(both[f"flag_{name}"].to_numpy(bool)[sel], y_label)
    label_side["label_score"]["auroc"] = round(
        float(roc_auc_score(y_label, 1 - both["label_score"].to_numpy(float)[sel])), 4
    )

    fig = {
        "auroc": round(float(np.mean([r["auroc"] for r in runs])), 4),
        "precision": pooled["precision"],
        "recall": pooled["recall"],
        "recall_by_kind": pooled["recall_by_kind"],
        "count_by_kind": pooled["count_by_kind"],
        "noisy_clean_rejected": pooled["clean_rejected"],
        "collateral": pooled["collateral"],
        "collateral_share": pooled["collateral_share"],
        "kinds": args.kinds,
        **fig_clean,
        "label_only": label_side,
        "per_seed": [{k: r[k] for k in ("auroc", "precision", "recall", "recall_by_kind")} for r in runs],
        "data": args.data,
        "tracks": tracks,
        "seconds": None if real else args.seconds,
        "threshold": args.threshold,
        "embedder": args.embedder,
        "reference_pool": not args.no_reference_pool,
        "bleed": args.bleed,
        "mislabel_rate": mislabel,
        "bleed_rate": bleed,
        "corrupt_seeds": args.corrupt_seeds,
        "fragments": pooled["fragments"],
        "corrupted": pooled["corrupted"],
        "false_pos": pooled["false_pos"],
        "true_pos": pooled["true_pos"],
    }
    print(
        f"\n{args.data}: {tracks} tracks (prepared in {prep:.0f} s), mislabel {mislabel}, bleed {bleed}, corruption "
        f"seeds {args.corrupt_seeds}"
    )
    print(
        f"{pooled['fragments']} fragments, {pooled['corrupted']} corrupted, {pooled['ambiguous']} ambiguous (left out)"
    )
    print(f"{'metric':<30}{'value':>8}")
    print(f"{'auroc (mean of seeds)':<30}{fig['auroc']:>8}")
    for k in ("precision", "recall"):
        print(f"{k + ' (pooled)':<30}{fig[k]:>8}")
    for k, v in fig["recall_by_kind"].items():
        print(f"{'recall ' + k:<30}{v:>8}   (n={fig['count_by_kind'][k]})")
    print(f"{'unit accuracy (clean)':<30}{acc:>8}")
    print(f"{'clean false rejection':<30}{fig['clean_false_rejection']:>8}")
    print(f"{'clean rejected (noisy sets)':<30}{fig['noisy_clean_rejected']:>8}")
    print(f"{'collateral (of clean)':<30}{fig['collateral']:>8}   ({fig['collateral_share']} of false rejections)")
    print(f"{'x real time (clean scan)':<30}{fig['x_realtime']:>8}")
    print(
        f"\nlabel corruptions alone ({int(sel.sum())} fragments, {int(y_label.sum())} mislabelled), threshold "
        f"{args.threshold}:"
    )
    print(f"{'rule':<34}{'precision':>10}{'recall':>8}{'flagged':>9}")
    for name, v in label_side.items():
        print(f"{name:<34}{v['precision']:>10}{v['recall']:>8}{v['flagged']:>9}")
    print("\nquality quartiles per kind:")
    print(
        both.groupby(both["corruption_kind"].fillna("clean"))["quality"]
        .describe()[["count", "25%", "50%", "75%"]]
        .round(3)
        .to_string()
    )
    if args.keep:
        both.to_parquet(work / "scored.parquet")
        rej.to_parquet(work / "clean_rejected.parquet")
    else:
        shutil.rmtree(work, ignore_errors=True)
    name = {"rendered": "detection", "synth": "detection_synth", "real": "detection_real"}[args.data]
    if (mislabel, bleed) != ((0.3, 0.3) if real else (0.2, 0.2)):  # other rates: a file of their own
        name += f"_m{round(100 * mislabel)}_b{round(100 * bleed)}"
    if args.bleed:  # an ablation never replaces the default figures
        name += "_ablation"
    finish(name, fig, args.save)


if __name__ == "__main__":
    main()
