"""``curate scan`` cost on generated tracks: real-time factor over all stems, by stage, and its growth in tracks.

Usage: python bench/scan_cost.py [--save] [--quick] [--jobs N] [--tracks N] [--seconds S]

1. ``curate synth clean`` tracks (default 24 x 60 s, four stems), scanned with the default settings
   (embedder ``musicnn``, reference pool, label model) and ``--jobs`` = the cores: stage 1 (the per-track
   checks, SAD, embeddings, bleed, onset envelopes) run as one shard (``scan(..., shard=(0, 1))``), then
   the merging scan (stage 2: reference pool, label model, manifest). Real-time factor: seconds of stem
   audio (tracks x stems x length) per wall second.
2. Stage 2 at scale: the scanned units tiled to 100, 300 and 1000 tracks (each copy a new track, its
   embeddings with 5 % noise, its onset envelopes with noise), then the label model
   (:func:`curate.scoring.classify.score_labels` with the reference pool) and the alignment evidence
   alone (:func:`curate.scoring.context.alignment_z`) timed at each size, beside its earlier form (which
   listed the other tracks' units for every unit; kept in the tests as the reference it must equal) at
   the smallest and largest. ``growth`` is time per track at 1000 over time per track at 100 (1 = linear).
3. A scan of 1000 such tracks, extrapolated: stage 1 is independent per track (its time per track times
   1000), stage 2 as measured at 1000.

Prints a table, then one JSON line: {"x_real_time", "x_real_time_1000_tracks", "stage1_s_per_track",
"label_model_s", "alignment_s", "growth_label_model", "growth_alignment", ...}.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import finish  # noqa: E402
from tests.curate.scoring.test_context import _alignment_z_listing_the_others  # noqa: E402


def _stage2_inputs(parts: Path, root: Path):
    """Fragments, embeddings and envelopes of every track kept in ``parts``, as the merging scan reads them."""
    from curate.data.datasets import discover
    from curate.scanparts import load_part, part_key
    from curate.scantrack import pad_concat

    frames, arrays = [], []
    for track in discover(root):
        done = load_part(parts, part_key(track))
        if done is not None and len(done.rows):
            frames.append(done.rows)
            arrays.append(done.arrays)
    fragments = pd.concat(frames, ignore_index=True)
    order = fragments.sort_values(["track", "stem", "start"], kind="stable").index.to_numpy()
    emb = pad_concat([a["emb"] for a in arrays])[order]
    env = pad_concat([a["env"] for a in arrays])[order]
    return fragments.loc[order].reset_index(drop=True), emb, env


def tile(fragments: pd.DataFrame, emb: np.ndarray, env: np.ndarray, tracks: int, *, seed: int = 0):
    """The units of ``fragments`` copied until there are ``tracks`` tracks; every copy's embeddings and
    envelopes get independent noise (5 % of each dimension's spread), so no two tracks are equal."""
    rng = np.random.default_rng(seed)
    names = fragments["track"].unique()
    spread = emb.reshape(-1, emb.shape[-1]).std(axis=0) + 1e-6
    env_spread = float(env.astype(np.float32).std()) + 1e-6
    frames, embs, envs = [], [], []
    for k in range(-(-tracks // len(names))):
        f = fragments.copy()
        f["track"] = f["track"] + f"~{k}"
        frames.append(f)
        embs.append(emb + rng.standard_normal(emb.shape).astype(np.float32) * 0.05 * spread)
        noise = np.abs(rng.standard_normal(env.shape)).astype(np.float32) * 0.05 * env_spread
        envs.append((env.astype(np.float32) + noise).astype(np.float16))
    f = pd.concat(frames, ignore_index=True)
    keep = f["track"].isin(f["track"].unique()[:tracks]).to_numpy()
    return f[keep].reset_index(drop=True), np.concatenate(embs)[keep], np.concatenate(envs)[keep]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--save", action="store_true")
    ap.add_argument("--quick", action="store_true", help="8 tracks of 30 s, stage 2 at 100 and 300 tracks")
    ap.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--tracks", type=int, default=None)
    ap.add_argument("--seconds", type=float, default=None)
    args = ap.parse_args()
    if args.jobs < 1 or (args.tracks is not None and args.tracks < 2):
        ap.error("--jobs must be 1 or more and --tracks 2 or more (the label model needs two tracks)")
    if args.seconds is not None and not 10 <= args.seconds <= 3600:
        ap.error(f"--seconds {args.seconds}: give 10 to 3600 s (a fragment is 6 s of SAD windows)")
    from curate.reference import reference_pool
    from curate.scan import scan
    from curate.scantrack import ScoreConfig
    from curate.scoring.classify import score_labels
    from curate.scoring.context import alignment_z
    from curate.scoring.labelmodel import split_units
    from curate.simulate.synth import synth_dataset

    n_tracks = args.tracks if args.tracks is not None else (8 if args.quick else 24)
    seconds = args.seconds if args.seconds is not None else (30.0 if args.quick else 60.0)
    sizes = (100, 300) if args.quick else (100, 300, 1000)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        synth_dataset(root, tracks=n_tracks, seconds=seconds, seed=0)
        out = Path(tmp) / "m.parquet"
        t = time.perf_counter()
        scan(root, output=out, jobs=args.jobs, shard=(0, 1))
        stage1 = time.perf_counter() - t
        fragments, emb, env = _stage2_inputs(out.with_name(out.name + ".parts"), root)
        t = time.perf_counter()
        result = scan(root, output=out, jobs=args.jobs)
        stage2 = time.perf_counter() - t
    stems = len(result.stems)
    audio_s = n_tracks * stems * seconds
    score = ScoreConfig()
    pool = reference_pool(score.embedder, synth=score.reference_pool, stems=result.stems)
    label_s, align_s, align_ref_s, units_at = {}, {}, {}, {}
    for size in sizes:
        f, e, v = tile(fragments, emb, env, size)
        t = time.perf_counter()
        score_labels(f, e, v, config=score.labels, reference=pool)
        label_s[size] = time.perf_counter() - t
        units, arr, _ = split_units(f.reset_index(drop=True), {"env": v})
        units_at[size] = len(units)
        t = time.perf_counter()
        alignment_z(units, arr["env"], seed=0)
        align_s[size] = time.perf_counter() - t
        if size in (sizes[0], sizes[-1]):  # the earlier form, which listed the other tracks' units per unit
            t = time.perf_counter()
            _alignment_z_listing_the_others(units, arr["env"], seed=0)
            align_ref_s[size] = time.perf_counter() - t
        print(f"  {size} tracks: label model {label_s[size]:.1f} s, alignment {align_s[size]:.2f} s", file=sys.stderr)
    lo, hi = sizes[0], sizes[-1]
    growth_label = (label_s[hi] / hi) / (label_s[lo] / lo)
    growth_align = (align_s[hi] / hi) / (align_s[lo] / lo)
    growth_align_ref = (align_ref_s[hi] / hi) / (align_ref_s[lo] / lo)
    per_track1 = stage1 / n_tracks
    total_hi = per_track1 * hi + label_s[hi]
    x_rt = audio_s / (stage1 + stage2)
    x_rt_hi = hi * stems * seconds / total_hi

    print(
        f"curate scan, default settings, {args.jobs} jobs: {n_tracks} generated tracks x {stems} stems x {seconds:g} s"
    )
    print(f"{'stage':<44}{'wall s':>10}{'x real time':>14}")
    print(f"{'1: per track (checks, SAD, embeddings, bleed)':<44}{stage1:>10.1f}{audio_s / stage1:>14.1f}")
    print(f"{'2: reference pool, label model, manifest':<44}{stage2:>10.1f}{'':>14}")
    print(f"{'whole scan':<44}{stage1 + stage2:>10.1f}{x_rt:>14.1f}")
    print(f"\nstage 2 on tiled units ({', '.join(f'{s}: {units_at[s]}' for s in sizes)} units)")
    print(f"{'tracks':<10}{'label model s':>16}{'per track s':>14}{'alignment s':>14}{'per track ms':>14}")
    for s in sizes:
        print(f"{s:<10}{label_s[s]:>16.1f}{label_s[s] / s:>14.3f}{align_s[s]:>14.2f}{1000 * align_s[s] / s:>14.2f}")
    print(
        f"growth per track {lo} -> {hi} tracks: label model {growth_label:.2f}, "
        f"alignment {growth_align:.2f} (1 = linear)"
    )
    print(
        f"alignment before (listing the other tracks' units): {align_ref_s[lo]:.2f} s at {lo} tracks, "
        f"{align_ref_s[hi]:.2f} s at {hi} (growth {growth_align_ref:.2f}); now {align_s[hi]:.2f} s at {hi}, "
        f"{align_ref_s[hi] / align_s[hi]:.1f}x faster"
    )
    print(
        f"{hi} tracks extrapolated: stage 1 {per_track1 * hi:.0f} s + stage 2 {label_s[hi]:.0f} s = {total_hi:.0f} s, "
        f"{x_rt_hi:.1f}x real time"
    )
    fig = {
        "x_real_time": round(x_rt, 1),
        f"x_real_time_{hi}_tracks": round(x_rt_hi, 1),
        "stage1_s_per_track": round(per_track1, 3),
        "stage2_s": round(stage2, 2),
        "label_model_s": {str(s): round(v, 2) for s, v in label_s.items()},
        "alignment_s": {str(s): round(v, 3) for s, v in align_s.items()},
        "growth_label_model": round(growth_label, 2),
        "growth_alignment": round(growth_align, 2),
        "alignment_before_s": {str(k): round(v, 3) for k, v in align_ref_s.items()},
        "growth_alignment_before": round(growth_align_ref, 2),
        "tracks": n_tracks,
        "seconds": seconds,
        "stems": stems,
        "jobs": args.jobs,
    }
    finish("scan_cost", fig, args.save)


if __name__ == "__main__":
    main()
