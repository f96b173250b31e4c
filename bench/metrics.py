"""cSDR speed and parity: pipelines.metrics.csdr_windows vs museval.evaluate on one 30 s stereo track.

Usage: python bench/metrics.py [--save] [--seconds 30]
Four sources (vocals, bass, drums, other) of the MUSDB18-HQ sample in ../shared when present
(looped to the length), else band-limited noise; estimates = each source plus 20 % of the others
and a little noise. Both implementations evaluate all four together (as museval.eval_mus_track).
Prints a table, then one JSON line: {"csdr_max_abs_diff_db", "csdr_speedup_vs_museval"}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import best_time, finish  # noqa: E402
from pipelines.metrics import csdr, csdr_windows  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "musdb18hq-sample"
STEMS = ("vocals", "bass", "drums", "other")


def sources(n: int) -> tuple[np.ndarray, str]:
    folders = sorted(p.parent for p in SAMPLE.glob("*/*/vocals.wav"))
    if folders:
        out = []
        for s in STEMS:
            x, _ = sf.read(folders[0] / f"{s}.wav", dtype="float64", always_2d=True)
            out.append(np.tile(x, (int(np.ceil(n / len(x))), 1))[:n])
        return np.stack(out), f"MUSDB18-HQ sample '{folders[0].name}' (looped)"
    rng = np.random.default_rng(0)
    return 0.1 * rng.standard_normal((4, n, 2)), "noise"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--save", action="store_true", help="write docs/benchmarks/metrics.json")
    ap.add_argument("--seconds", type=float, default=30.0)
    args = ap.parse_args()
    import museval

    n = int(args.seconds * 44100)
    ref, what = sources(n)
    rng = np.random.default_rng(1)
    est = np.stack([ref[j] + 0.2 * (ref.sum(0) - ref[j]) + 0.01 * rng.standard_normal(ref[j].shape) for j in range(4)])
    t = time.perf_counter()
    expected = museval.evaluate(ref, est)[0]
    t_museval = time.perf_counter() - t
    t_ours = best_time(lambda: csdr_windows(ref, est), repeat=3)
    got = csdr_windows(ref, est)
    same_nan = bool(np.array_equal(np.isnan(got), np.isnan(expected)))
    diff = float(np.nanmax(np.abs(got - expected)))
    med_expected = np.array([np.nanmedian(r) for r in expected])
    med_diff = float(np.nanmax(np.abs(csdr(ref, est) - med_expected)))
    print(f"signal: {what}, {args.seconds:g} s stereo, 4 sources, {got.shape[1]} windows of 1 s")
    print(f"{'implementation':<28}{'seconds':>10}")
    print(f"{'museval.evaluate (v4)':<28}{t_museval:>10.3f}")
    print(f"{'pipelines.metrics':<28}{t_ours:>10.4f}")
    print(
        f"speed-up {t_museval / t_ours:,.0f}x; max |diff| per window {diff:.2e} dB, of medians {med_diff:.2e} dB; "
        f"same NaN windows: {same_nan}"
    )
    print("cSDR per source (median):", ", ".join(f"{s} {v:.2f}" for s, v in zip(STEMS, med_expected)))
    finish(
        "metrics",
        {
            "csdr_max_abs_diff_db": float(f"{max(diff, med_diff):.3g}"),
            "csdr_speedup_vs_museval": round(t_museval / t_ours, 1),
        },
        args.save,
    )


if __name__ == "__main__":
    main()
