"""SAD throughput (x real time per stem) of the vectorised detector vs the per-window loop, and parity.

Usage: python bench/sad.py [--minutes 4] [--stems 8] [--save]
Prints a table, then one JSON line: {"sad_x_realtime", "loop_x_realtime", "speedup_vs_loop", "parity",
"scan_x_realtime"}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import best_time, finish  # noqa: E402
from sad import SADConfig, detect  # noqa: E402
from sad.reference import detect_loop  # noqa: E402

SR = 44100


def music_like_stem(rng, seconds: float) -> np.ndarray:
    """Stereo noise with a slow loudness envelope and silent gaps, float32 (2, samples)."""
    n = int(seconds * SR)
    x = (0.1 * rng.standard_normal((2, n))).astype(np.float32)
    x *= (0.05 + np.sin(np.linspace(0, seconds / 7, n)) ** 2).astype(np.float32)
    for _ in range(int(seconds / 20)):
        a = int(rng.integers(0, n))
        x[:, a : a + int(SR * rng.uniform(1, 12))] = 0
    return x


def scan_throughput(tracks: int = 4, seconds: float = 60.0) -> float:
    """Audio seconds of stems scanned per wall second by the whole ``curate scan`` on synth data."""
    import tempfile
    import time

    from curate.scan import scan
    from curate.simulate.synth import synth_dataset

    with tempfile.TemporaryDirectory() as tmp:
        synth_dataset(Path(tmp) / "d", tracks=tracks, seconds=seconds, seed=0)
        t = time.perf_counter()
        scan(Path(tmp) / "d", output=Path(tmp) / "m.parquet")
        elapsed = time.perf_counter() - t
    return tracks * 4 * seconds / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=4.0, help="length of each test stem")
    ap.add_argument("--stems", type=int, default=8, help="number of random stems")
    ap.add_argument("--save", action="store_true", help="write docs/benchmarks/sad.json")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    seconds = args.minutes * 60
    stems = [music_like_stem(rng, seconds) for _ in range(args.stems)]
    config = SADConfig()

    fast_t = best_time(lambda: [detect(x, SR, config) for x in stems], repeat=5) / len(stems)
    loop_t = best_time(lambda: [detect_loop(x, SR, config) for x in stems[:2]], repeat=1) / 2
    parity = all(np.array_equal(detect(x, SR, config), detect_loop(x, SR, config)) for x in stems)
    kept = sum(len(detect(x, SR, config)) for x in stems)

    scan_xrt = scan_throughput()
    fig = {
        "sad_x_realtime": round(seconds / fast_t, 1),
        "loop_x_realtime": round(seconds / loop_t, 1),
        "speedup_vs_loop": round(loop_t / fast_t, 1),
        "parity": bool(parity),
        "scan_x_realtime": round(scan_xrt, 1),
    }
    print(f"SAD on {args.stems} stereo stems of {args.minutes:g} min at {SR} Hz ({kept} fragments kept)")
    print(f"{'implementation':<28}{'s per stem':>12}{'x real time':>14}")
    print(f"{'vectorised (sad.detect)':<28}{fast_t:>12.4f}{fig['sad_x_realtime']:>14.1f}")
    print(f"{'per-window loop (reference)':<28}{loop_t:>12.4f}{fig['loop_x_realtime']:>14.1f}")
    print(f"speed-up {fig['speedup_vs_loop']}x, identical fragments on all stems: {parity}")
    print(
        f"whole 'curate scan' (decode, checks, SAD, features, bleed, label model; 1 job): {fig['scan_x_realtime']}x "
        f"real time over all stems"
    )
    finish("sad", fig, args.save)


if __name__ == "__main__":
    main()
