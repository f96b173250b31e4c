"""End to end: does curating and training robustly on noisy stems get close to training on clean stems?

Usage: python bench/e2e.py [--data rendered|real] [--quick] [--save [--save-as NAME]] [--seeds 0,1,2] [--steps 200]
                         [--configs a,b,c,d,e,f,o] [--model tiny] [--work DIR]
                         [--accelerator gpu --device cuda] [--precision auto|fp32|bf16] [--level equal|rendered]
                         [--no-repair] [--no-fill-missing] [--kinds swap,replace,partial,bleed,room,console]
                         [--jobs 2]

Renders a dataset (../shared/tools/render_multitracks.py: 32 train + 4 test tracks of 40 s, every usable
song of the renderer's 36),
re-mixes every track with its stems at about equal loudness (``--level equal``, the default; see
bench.common.relevel: as rendered, the vocal line of some songs sits 10-21 dB under the rest, where
no model at this budget beats a silent estimate), corrupts the train split with `curate corrupt` (30 % of stems
mislabelled,
30 % with leaks), and trains the tiny BSRNN (``--model``) for vocals and bass with the same step budget and seed in six
configurations:

  a  clean oracle: every fragment of the clean train split
  b  noisy: every fragment of the noisy split, no robustness
  c  noisy with loss truncation only (30 % of the examples dropped, compared within their level)
  d  curated: `curate filter --threshold 0.7` of the scored noisy scan
  e  curated + quality weighting + loss truncation (10 %: curated data holds far fewer corrupted examples)
  f  two rounds: (c)'s models rescan the noisy split (`--separator`), filter 0.7, train as (e)
  o  reference, not a method: the noisy split's fragments that the ground truth says are clean (a
     perfect filter), the most that any filter can give at this corruption rate; `--configs` adds it
  u  reference, not a method: the clean train split less the audio that the corruption replaced (a
     perfect repair: every stem's own content that the noisy split still holds, mended), the most
     that any curation of the noisy split can give; `--configs` adds it

Curation (d, e, f) first mends the noisy split (`curate repair`: swapped files trade labels, leaks
are subtracted), then rescans the repaired copy and filters that (``--no-repair``: filter the noisy
scan as it is); a, b, c and o are unchanged. Training takes rejected accompaniment stems from other
tracks (``fill_missing``; ``--no-fill-missing`` turns it off). The targets of each configuration
train side by side in ``--jobs`` processes that share the cores (2 cores: about 1.4x the throughput
of one process with two threads).

Every model is evaluated on the clean test split (uSDR mean over tracks, cSDR median). Gap closed =
(SDR_x - SDR_b) / (SDR_a - SDR_b) per target on mean uSDR over seeds, then averaged over the targets
whose clean-noisy gap is at least ``--min-gap`` dB (1; real 0.5) and larger than the seed spread of a and b
(None when there is none; every target's value is printed).

``--data real``: the real MUSDB18 excerpts of ../shared/data/musdb18-7s instead of renders, split as
bench/learning.py splits them (bench.common.split_real_songs): its 70 training and validation songs are
the train split that is corrupted, its 24 held-out songs the clean test split. The models train with the
trainer's own defaults (warm-up and cosine schedule, learning rate, crop length) for ``--steps`` 600;
``--save`` writes docs/benchmarks/e2e_real.json and docs/img/e2e_real.png.
Prints a table, then one JSON line: {"sdr", "gap_closed", "best_gap_closed", ...}.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import LEVELS, REPO, finish, link_real_songs, log, render  # noqa: E402
from bsrnn.model import BSRNN, SIZES  # noqa: E402
from curate.common.cliutil import parse_list  # noqa: E402
from curate.data.schema import CORRUPTIONS_FILE, REPAIRS_FILE, read_corruptions, read_manifest, write_manifest  # noqa: E402
from curate.filter import filter_manifest  # noqa: E402
from curate.repair import repair_dataset  # noqa: E402
from curate.scan import scan  # noqa: E402
from curate.scantrack import ScoreConfig  # noqa: E402
from curate.simulate.corrupt import LEAK_KINDS, MISLABEL_KINDS, corrupt_dataset  # noqa: E402
from pipelines.budget import resolve_precision  # noqa: E402
from pipelines.config import (  # noqa: E402
    TRAIN_PRECISIONS,
    TrainConfig,
    accelerator_device,
    model_config,
    train_config,
)
from pipelines.data import fragment_corrupted  # noqa: E402
from pipelines.evaluate import evaluate  # noqa: E402
from pipelines.train import train  # noqa: E402

CONFIGS = {
    "a": "clean oracle",
    "b": "noisy, no robustness",
    "c": "noisy + loss truncation",
    "d": "curated (filter 0.7)",
    "e": "curated + weighting + truncation",
    "f": "two rounds (self-separation rescan)",
    "o": "reference: perfect filter (truth)",
    "u": "reference: perfect repair (truth)",
}
METHODS = ("c", "d", "e", "f")  # what best_gap_closed is taken over (o is a reference)


def truth_filter(noisy_manifest: Path, out: Path) -> int:
    """Write the fragments of ``noisy_manifest`` that its data root's ``corruptions.parquet`` says are
    clean (unknown ones are left out); how many."""
    m = read_manifest(noisy_manifest)
    flags, _ = fragment_corrupted(m)
    write_manifest(m.frame[flags == 0], out, root=m.root, meta=m.meta)
    return int((flags == 0).sum())


def mended_reference(clean_manifest: Path, corruptions: Path, out: Path) -> int:
    """Write the fragments of ``clean_manifest`` whose audio the corruption did not replace (kinds
    ``replace`` and ``partial`` remove a stem's own content from the noisy split; swaps and leaks
    leave it there); how many."""
    m = read_manifest(clean_manifest)
    truth = read_corruptions(corruptions)
    gone = truth[truth["kind"].isin(["replace", "partial"])]
    f = m.frame
    drop = np.zeros(len(f), dtype=bool)
    for r in gone.itertuples():
        drop |= (
            (f["subset"] == r.subset)
            & (f["track"] == r.track)
            & (f["stem"] == r.stem)
            & (f["start"] < r.end)
            & (f["end"] > r.start)
        ).to_numpy()
    write_manifest(f[~drop], out, root=m.root, meta=m.meta)
    return int((~drop).sum())


def train_settings(
    steps: int,
    *,
    batch: int = 4,
    crop: float | None = None,
    lr: float | None = None,
    fill_missing: bool = False,
    trainer_defaults: bool = False,
    precision: str = "auto",
):
    """The benchmark's :class:`TrainConfig`: no validation, truncation after a quarter of the steps.

    By default (rendered data) the seed's schedule with one 10-step warm-up epoch, lr 3e-3, 2-s crops;
    ``trainer_defaults`` (real songs): the trainer's own schedule, learning rate and crop length
    (``pipelines train``'s defaults). ``crop``/``lr`` override either."""
    sets: dict = {}
    if not trainer_defaults:
        sets = dict(schedule="seed", warmup_epochs=1, epoch_steps=10, lr=3e-3, crop_s=2.0)
    if lr is not None:
        sets["lr"] = lr
    if crop is not None:
        sets["crop_s"] = crop
    return train_config(
        sets,
        max_steps=steps,
        batch_size=batch,
        valid_fraction=0.0,
        val_every=10_000,
        truncate_warmup=max(10, steps // 4),
        fill_missing=fill_missing,
        precision=precision,
    )


def manifest_digest(manifest: Path) -> str:
    """Hash of what training reads from a manifest: every fragment's place and quality."""
    f = read_manifest(manifest).frame[["subset", "track", "stem", "start", "end", "quality"]]
    return f"{int(pd.util.hash_pandas_object(f, index=False).sum()) & (2**64 - 1):016x}"


def _used(train: dict) -> dict:
    """Training settings less the loss-truncation ones when truncation is off (they change nothing then)."""
    return train if train.get("truncate") else {k: v for k, v in train.items() if not k.startswith("truncate_")}


def cached_model(export: Path, cfg, digest: str, preset: str = "tiny", accelerator: str = "auto") -> BSRNN | None:
    """The model exported to ``export`` by an earlier run of this benchmark with the same preset and
    training settings on the same fragments (``bench.json`` beside it), or None: the benchmark resumes.
    Precision is compared as resolved on ``accelerator``'s device; a setting that the recorded run
    predates counts as its default (precision: fp32)."""
    side = export / "bench.json"
    if not side.is_file():
        return None
    done = json.loads(side.read_text())
    device = accelerator_device(accelerator)
    # a setting newer than the recorded run: its default, which trains as before, except precision (fp32 then)
    was = {**asdict(TrainConfig()), "precision": "fp32", **done.get("train", {})}
    was["precision"] = resolve_precision(was["precision"], device)
    now = json.loads(json.dumps(asdict(cfg)))
    now["precision"] = resolve_precision(now["precision"], device)
    if _used(was) != _used(now) or done.get("manifest") != digest:
        return None
    if done.get("model", "tiny") != preset:
        return None
    return BSRNN.load(export / f"{export.name}.ckpt")


def model_name(name: str, seed: int, preset: str, target: str | None = None) -> str:
    """The folder name of configuration ``name``'s models (``target``: its run) for ``seed``; the preset
    is named unless it is ``tiny`` (the folders of earlier runs keep their names)."""
    parts = [name] + ([] if preset == "tiny" else [preset]) + ([target] if target else []) + [str(seed)]
    return "-".join(parts)


def _worker_init(threads: int) -> None:
    """A training worker process: ``threads`` torch threads, so that the workers share the cores."""
    torch.set_num_threads(threads)


def _train_target(
    manifest: Path, target: str, cfg, out: Path, export_dir: Path, accelerator: str, preset: str = "tiny"
) -> Path:
    """Train one target's BSRNN of size ``preset`` from scratch into ``out`` and export it; the exported file."""
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(export_dir / target, ignore_errors=True)  # a stale model of other settings (cached_model refused it)
    r = train(
        manifest,
        model=model_config(preset, target),
        config=cfg,
        out=out,
        export_dir=export_dir,
        accelerator=accelerator,
        progress=False,
    )
    return Path(r.exported)


def train_eval(
    manifest: Path, data: Path, work: Path, name: str, targets: list[str], seed: int, base, *, run: dict, **robust
) -> dict:
    """Train every target on ``manifest`` (or reuse a finished identical run) and evaluate on the
    clean test split; ``{target: (usdr, csdr)}``. ``run["pool"]``, when set, trains the targets side by side."""
    models = {}
    digest = manifest_digest(manifest)
    cfg = replace(base, seed=seed, **robust)
    preset = run.get("model", "tiny")
    export_dir = work / "models" / model_name(name, seed, preset)
    todo = {}
    for t in targets:
        models[t] = cached_model(export_dir / t, cfg, digest, preset, run["accelerator"])
        if models[t] is not None:
            log(f"  {t}: reusing {export_dir / t}")
            continue
        job = (
            manifest,
            t,
            cfg,
            work / "runs" / model_name(name, seed, preset, t),
            export_dir,
            run["accelerator"],
            preset,
        )
        todo[t] = run["pool"].submit(_train_target, *job) if run.get("pool") else _train_target(*job)
    for t, job in todo.items():
        models[t] = BSRNN.load(job if isinstance(job, Path) else job.result())
        (export_dir / t / "bench.json").write_text(
            json.dumps({"train": asdict(cfg), "manifest": digest, "model": preset})
        )
    res = evaluate(models, data, subset="test", device=run["device"])
    return {t: (float(g["usdr"].mean()), float(np.nanmedian(g["csdr"]))) for t, g in res.groupby("target")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 seed, 8 + 2 tracks of 12 s, 60 steps")
    ap.add_argument("--save", action="store_true", help="write docs/benchmarks/e2e.json and docs/img/e2e.png")
    ap.add_argument(
        "--save-as", default=None, help="with --save: docs/benchmarks/NAME.json and docs/img/NAME.png instead"
    )
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--targets", default="vocals,bass")
    ap.add_argument("--configs", default="a,b,c,d,e,f")
    ap.add_argument(
        "--data",
        default="rendered",
        choices=("rendered", "real"),
        help="rendered songs (../shared/tools/render_multitracks.py), or the real MUSDB18 excerpts "
        "(bench.common.split_real_songs: training and validation songs corrupted, the 24 test songs held out)",
    )
    ap.add_argument("--steps", type=int, default=None, help="training steps per model (rendered 200, real 600)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--model", default="tiny", choices=list(SIZES), help="model preset of every trained model")
    ap.add_argument(
        "--precision",
        default="auto",
        choices=TRAIN_PRECISIONS,
        help="training arithmetic of every model (pipelines train's precision; auto: bf16 where the device has it)",
    )
    ap.add_argument("--crop", type=float, default=None, help="crop length, s (rendered 2; real: the trainer's default)")
    ap.add_argument("--lr", type=float, default=None, help="learning rate (rendered 3e-3; real: the trainer's default)")
    ap.add_argument(
        "--min-gap",
        type=float,
        default=None,
        help="smallest clean-noisy uSDR gap, dB, that a target's gap-closed figure counts for (rendered 1, real 0.5)",
    )
    ap.add_argument(
        "--repair",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="curate repair the noisy split before the curated configurations scan and filter it (default on)",
    )
    ap.add_argument(
        "--fill-missing",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="TrainConfig.fill_missing: take rejected accompaniment stems from other tracks (default on)",
    )
    ap.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="train the targets of a configuration side by side in this many "
        "processes, the cores shared among them (1: one at a time, in this process)",
    )
    ap.add_argument("--train-tracks", type=int, default=32)
    ap.add_argument("--test-tracks", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--mislabel-rate", type=float, default=0.3)
    ap.add_argument("--bleed-rate", type=float, default=0.3)
    ap.add_argument(
        "--kinds",
        default=",".join(MISLABEL_KINDS + LEAK_KINDS),
        help="corruption kinds (default: the mislabel and leak kinds, without separated)",
    )
    ap.add_argument("--render-seed", type=int, default=0)
    ap.add_argument(
        "--level",
        default="equal",
        choices=LEVELS,
        help="re-mix the rendered stems at about equal loudness (bench.common.relevel), or keep the renderer's levels",
    )
    ap.add_argument("--work", type=Path, default=None, help="keep data, runs and models here")
    ap.add_argument("--accelerator", default="auto", help="Lightning accelerator for training (auto, cpu, gpu)")
    ap.add_argument("--device", default="cpu", help="torch device for evaluation and the self-separation rescan")
    args = ap.parse_args()
    real = args.data == "real"
    if args.steps is None:
        args.steps = 600 if real else 200
    if args.min_gap is None:
        args.min_gap = 0.5 if real else 1.0
    if args.quick:
        args.seeds, args.steps, args.train_tracks, args.test_tracks, args.seconds = "0", 60, 8, 2, 12.0
    seeds = [int(s) for s in args.seeds.split(",")]
    targets = args.targets.split(",")
    configs = args.configs.split(",")
    t0 = time.perf_counter()
    tmp = None if args.work else tempfile.TemporaryDirectory()
    work = args.work or Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    clean, noisy = work / "clean", work / "noisy"
    if real:
        train_songs, valid_songs, test_songs = link_real_songs(clean)
        args.train_tracks, args.test_tracks, args.seconds = len(train_songs) + len(valid_songs), len(test_songs), 6.8
    elif not (clean / "test").is_dir():
        log("rendering")
        render(
            clean,
            train=args.train_tracks,
            test=args.test_tracks,
            seconds=args.seconds,
            seed=args.render_seed,
            level=args.level,
        )
    if not (noisy / CORRUPTIONS_FILE).is_file():
        log("corrupting")
        corrupt_dataset(
            clean,
            noisy,
            mislabel_rate=args.mislabel_rate,
            bleed_rate=args.bleed_rate,
            seed=0,
            kinds=parse_list(args.kinds, "--kinds"),
        )
    manifests = {
        "clean": work / "clean.parquet",
        "noisy": work / "noisy.parquet",
        "curated": work / "curated.parquet",
        "truth": work / "truth-filtered.parquet",
    }
    if not manifests["clean"].is_file():
        scan(clean, output=manifests["clean"], score=None)
    if not manifests["noisy"].is_file():
        log("scanning the noisy split")
        scan(noisy, output=manifests["noisy"], score=ScoreConfig(), jobs=2)
    curated_from, curated_data = manifests["noisy"], noisy  # what the curated configurations scan and filter
    if args.repair:
        repaired, curated_from = work / "repaired", work / "repaired.parquet"
        if not (repaired / REPAIRS_FILE).is_file():
            log("repairing the noisy split")
            shutil.rmtree(repaired, ignore_errors=True)
            repair_dataset(read_manifest(manifests["noisy"]), repaired)
        if not curated_from.is_file():
            scan(repaired, output=curated_from, score=ScoreConfig(), jobs=2)
        curated_data = repaired
        manifests["curated"] = work / "curated-repaired.parquet"
    filt = filter_manifest(curated_from, threshold=0.7, output=manifests["curated"], rejected=work / "rejected.parquet")
    prep_s = time.perf_counter() - t0
    base = train_settings(
        args.steps,
        batch=args.batch,
        crop=args.crop,
        lr=args.lr,
        fill_missing=args.fill_missing,
        trainer_defaults=real,
        precision=args.precision,
    )
    trunc = dict(truncate=True, truncate_quantile=0.3, truncate_mode="history")
    # curated data holds far fewer corrupted examples: drop a tenth, not 30 % (which drops hard clean ones)
    curated_trunc = dict(trunc, truncate_quantile=0.1)
    results: dict[str, dict[int, dict]] = {c: {} for c in configs}
    pool = None
    if args.jobs > 1:
        threads = max(
            1, torch.get_num_threads() // args.jobs
        )  # this process's threads (OMP_NUM_THREADS, or the cores) shared out
        pool = ProcessPoolExecutor(
            args.jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init, initargs=(threads,)
        )
    run = {"accelerator": args.accelerator, "device": args.device, "pool": pool, "model": args.model}
    spent = {c: 0.0 for c in configs}  # seconds per configuration (f: its rescans and, when trained here, round one)
    if "o" in configs and not manifests["truth"].is_file():
        truth_filter(manifests["noisy"], manifests["truth"])
    manifests["mended"] = work / "truth-mended.parquet"
    if "u" in configs and not manifests["mended"].is_file():
        mended_reference(manifests["clean"], noisy / CORRUPTIONS_FILE, manifests["mended"])
    plan = {  # configuration -> (manifest, robustness)
        "a": (manifests["clean"], {}),
        "b": (manifests["noisy"], {}),
        "c": (manifests["noisy"], trunc),
        "d": (manifests["curated"], {}),
        "e": (manifests["curated"], {"weighting": "quality", **curated_trunc}),
        "o": (manifests["truth"], {}),
        "u": (manifests["mended"], {}),
    }
    for seed in seeds:
        for c in configs:
            log(f"seed {seed}: {c} ({CONFIGS[c]})")
            t_c = time.perf_counter()
            if c != "f":
                manifest, robust = plan[c]
                results[c][seed] = train_eval(manifest, clean, work, c, targets, seed, base, run=run, **robust)
            else:
                round1 = work / "models" / model_name("c", seed, args.model)
                if seed not in results.get("c", {}):  # trains (c), or checks that its models match these settings
                    results.setdefault("c", {})[seed] = train_eval(
                        manifests["noisy"], clean, work, "c", targets, seed, base, run=run, **trunc
                    )
                rescan = work / f"rescan{'-repaired' if args.repair else ''}-{seed}.parquet"
                scan(
                    curated_data, output=rescan, score=ScoreConfig(separator=(str(round1),), device=args.device), jobs=2
                )
                filter_manifest(
                    rescan,
                    threshold=0.7,
                    output=work / f"curated2-{seed}.parquet",
                    rejected=work / f"rejected2-{seed}.parquet",
                )
                results[c][seed] = train_eval(
                    work / f"curated2-{seed}.parquet",
                    clean,
                    work,
                    c,
                    targets,
                    seed,
                    base,
                    run=run,
                    weighting="quality",
                    **curated_trunc,
                )
            spent[c] += time.perf_counter() - t_c
    if pool is not None:
        pool.shutdown()
    total_s = time.perf_counter() - t0

    sdr, spread = {}, {}
    for c in configs:
        sdr[c], spread[c] = {}, {}
        for t in targets:
            u = np.array([results[c][s][t][0] for s in seeds])
            cs = np.array([results[c][s][t][1] for s in seeds])
            sdr[c][t] = {"usdr": round(float(u.mean()), 3), "csdr": round(float(cs.mean()), 3)}
            spread[c][t] = {
                "usdr_std": round(float(u.std(ddof=1)) if len(u) > 1 else 0.0, 3),
                "csdr_std": round(float(cs.std(ddof=1)) if len(cs) > 1 else 0.0, 3),
            }
    gaps = {t: sdr["a"][t]["usdr"] - sdr["b"][t]["usdr"] for t in targets} if {"a", "b"} <= set(configs) else {}
    gap_closed, gap_closed_by_target = {}, {}
    # only a clean-noisy gap of at least --min-gap dB and larger than the seed spread of a and b says anything
    gap_std = {t: max(spread["a"][t]["usdr_std"], spread["b"][t]["usdr_std"]) for t in gaps}
    meaningful = [t for t in targets if t in gaps and gaps[t] >= args.min_gap and gaps[t] > gap_std[t]]
    for c in configs:
        if c in ("a", "b") or not gaps:
            continue
        gap_closed_by_target[c] = {
            t: round((sdr[c][t]["usdr"] - sdr["b"][t]["usdr"]) / gaps[t], 3) for t in targets if abs(gaps[t]) > 1e-9
        }
        per = [gap_closed_by_target[c][t] for t in meaningful]
        gap_closed[c] = round(float(np.mean(per)), 3) if per else None

    print(
        f"{args.train_tracks} train + {args.test_tracks} test {args.data} tracks of {args.seconds:g} s; corrupt: "
        f"mislabel {args.mislabel_rate}, "
        f"bleed {args.bleed_rate}; {'repaired, then ' if args.repair else ''}filter kept {len(filt.kept)} of "
        f"{len(filt.kept) + len(filt.rejected)} fragments"
    )
    print(
        f"{args.model} BSRNN, {args.steps} steps x {args.batch} x {base.crop_s:g} s, lr {base.lr:g} ({base.schedule}), "
        f"seeds {seeds}; total "
        f"{total_s / 60:.1f} min (prep {prep_s / 60:.1f})"
    )
    print(
        "minutes by configuration (models reused from earlier runs cost nothing): "
        + ", ".join(f"{c} {v / 60:.1f}" for c, v in spent.items())
    )
    head = f"{'config':<38}" + "".join(f"{t + ' uSDR':>17}{t + ' cSDR':>17}" for t in targets) + f"{'gap closed':>12}"
    print(head)
    for c in configs:
        cells = "".join(
            f"{sdr[c][t]['usdr']:>9.2f} ± {spread[c][t]['usdr_std']:<5.2f}{sdr[c][t]['csdr']:>9.2f} ± "
            f"{spread[c][t]['csdr_std']:<5.2f}"
            for t in targets
        )
        g = gap_closed.get(c)
        print(f"{c + ' ' + CONFIGS[c]:<38}{cells}{'' if g is None else f'{g:>12.2f}'}")
    for c, per in gap_closed_by_target.items():
        print(f"gap closed by {c}: " + ", ".join(f"{t} {v:.2f}" for t, v in per.items()))
    for t, g in gaps.items():
        weak = f"  (< {args.min_gap:g} dB or within the spread: the gap-closed figure means little)"
        note = "" if t in meaningful else weak
        print(f"clean - noisy gap, {t}: {g:.2f} dB (largest std {gap_std[t]:.2f} dB){note}")
    for c, g in gap_closed.items():
        within = [
            t
            for t in targets
            if abs(sdr[c][t]["usdr"] - sdr["b"][t]["usdr"]) <= max(spread[c][t]["usdr_std"], spread["b"][t]["usdr_std"])
        ]
        if within:
            print(f"{c}: difference to b within one std for {', '.join(within)}")
    valid = [v for c, v in gap_closed.items() if v is not None and c in METHODS]
    figures = {
        "sdr": sdr,
        "sdr_std": spread,
        "gap_closed": gap_closed,
        "best_gap_closed": max(valid) if valid else None,
        "gap_closed_by_target": gap_closed_by_target,
        "gap_closed_targets": meaningful,
        "clean_noisy_gap_db": {t: round(g, 3) for t, g in gaps.items()},
        "gap_meaningful": bool(gaps) and set(meaningful) == set(gaps),
        "min_gap_db": args.min_gap,
        "data": args.data,
        "steps": args.steps,
        "model": args.model,
        "seeds": seeds,
        "minutes": round(total_s / 60, 1),
        "prep_minutes": round(prep_s / 60, 1),
        "minutes_by_config": {c: round(v / 60, 1) for c, v in spent.items()},
        "repair": args.repair,
        "kept_fragments": len(filt.kept),
    }
    name = args.save_as or ("e2e_real" if real else "e2e")
    if args.save:
        _plot(sdr, spread, targets, configs, REPO / "docs" / "img" / f"{name}.png")
    finish(name, figures, args.save)
    if tmp is not None:
        tmp.cleanup()


def _plot(sdr, spread, targets, configs, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.6))
    x = np.arange(len(configs))
    w = 0.8 / len(targets)
    for i, t in enumerate(targets):
        ax.bar(
            x + i * w - 0.4 + w / 2,
            [sdr[c][t]["usdr"] for c in configs],
            w,
            yerr=[spread[c][t]["usdr_std"] for c in configs],
            label=t,
            capsize=3,
        )
    ax.set_xticks(x, [f"{c}\n" + textwrap.fill(CONFIGS[c].split(" (")[0], 13) for c in configs], fontsize=7)
    ax.set_ylabel("test uSDR, dB (mean ± std over seeds)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.savefig(path, dpi=90, bbox_inches="tight")


if __name__ == "__main__":
    main()
