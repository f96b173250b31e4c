"""Training on MUSDB18 as downloaded (``.stem.mp4``) against the same songs as WAV: seconds of a short run.

Usage: python bench/musdb_read.py [--data DIR] [--steps 30] [--tracks N] [--save]
The songs of ``--data`` (default ``../shared/data/musdb18-7s``) are scanned without scores, decoded
once to a MUSDB18-HQ-style WAV copy, and the tiny model is trained for ``--steps`` steps (no
validation) four times, alternating nothing else on the machine: on the ``.stem.mp4`` files with the
decode cache off (every read decodes the whole file: the behaviour before :mod:`curate.data.decoded`),
with an empty cache (each file decoded once, on its first read), with the cache filled (as after
``curate scan``), and on the WAV copy. Prints a table, then one JSON line:
``{"mp4_nocache_s", "mp4_cold_s", "mp4_warm_s", "wav_s", "nocache_over_wav", "cold_over_wav",
"warm_over_wav", "cache_gb", "tracks", "steps"}``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO, finish  # noqa: E402
from curate.data import decoded  # noqa: E402
from curate.data.audio import write  # noqa: E402
from curate.data.datasets import discover  # noqa: E402
from curate.scan import scan  # noqa: E402
from pipelines.config import model_config, train_config  # noqa: E402
from pipelines.train import train  # noqa: E402


def timed_run(manifest: Path, out: Path, steps: int, seed: int) -> float:
    cfg = train_config(
        {}, max_steps=steps, valid_fraction=0.0, val_every=10**6, schedule="constant", warmup_steps=0, seed=seed
    )
    start = time.perf_counter()
    train(manifest, model=model_config("tiny", "vocals"), config=cfg, out=out, export_dir=out / "exp", progress=False)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "musdb18-7s")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--tracks", type=int, default=None, help="the first N songs (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save", action="store_true", help="write docs/benchmarks/musdb_read.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="musdb_read_") as tmp:
        work = Path(tmp)
        tracks = discover(args.data, subset="train")[: args.tracks]
        mp4 = work / "mp4" / "train"
        mp4.mkdir(parents=True)
        for t in tracks:  # links: a subset of the songs, the files themselves untouched
            src = t.stems[next(iter(t.stems))].path
            (mp4 / src.name).symlink_to(src)
        os.environ[decoded.CACHE_ENV] = decoded.OFF
        scan(work / "mp4", output=work / "mp4.parquet", score=None)
        hq = work / "wav" / "train"
        for t in discover(work / "mp4"):
            stems, sr = t.load_all([*t.stems, "mixture"] if t.mixture else None)
            for name, x in stems.items():
                write(hq / t.name / f"{name}.wav", x, sr, subtype="FLOAT")
        scan(work / "wav", output=work / "wav.parquet", score=None)
        cache = work / "cache"
        rows = []
        os.environ[decoded.CACHE_ENV] = decoded.OFF
        rows.append(("mp4_nocache", timed_run(work / "mp4.parquet", work / "r1", args.steps, args.seed)))
        os.environ[decoded.CACHE_ENV] = str(cache)
        rows.append(("mp4_cold", timed_run(work / "mp4.parquet", work / "r2", args.steps, args.seed)))
        rows.append(("mp4_warm", timed_run(work / "mp4.parquet", work / "r3", args.steps, args.seed)))
        rows.append(("wav", timed_run(work / "wav.parquet", work / "r4", args.steps, args.seed)))
        _, entries, size = decoded.usage(cache)
    secs = dict(rows)
    print(f"{len(tracks)} songs, {args.steps} steps of the tiny model; cache: {entries} files, {size / 1e9:.2f} GB")
    print(f"{'run':<14}{'seconds':>10}{'x wav':>8}")
    for name, s in rows:
        print(f"{name:<14}{s:>10.1f}{s / secs['wav']:>8.2f}")
    figures = {f"{k}_s": round(v, 1) for k, v in secs.items()}
    figures.update(
        {f"{k[4:]}_over_wav": round(secs[k] / secs["wav"], 2) for k in ("mp4_nocache", "mp4_cold", "mp4_warm")}
    )
    figures.update(cache_gb=round(size / 1e9, 3), tracks=len(tracks), steps=args.steps)
    finish("musdb_read", figures, args.save)


if __name__ == "__main__":
    main()
