"""Separation speed and memory beside htdemucs; band layers beside bs-roformer's, on the same CPU.

Usage: python bench/peers.py [--save] [--quick] [--threads N] [--repeat R]

Needs the benchmark extras (``pip install -e .[bench]``: ``demucs``, ``bs-roformer``); they are never
runtime dependencies. Every model has random weights (nothing is downloaded).

- Separation: htdemucs (``demucs.htdemucs.HTDemucs`` with its default configuration, four stems in one
  pass, ``demucs.apply.apply_model`` with split, overlap 0.25 and its default one shift) against one
  BSRNN target, tiny and paper size, through :class:`bsrnn.separator.Separator` at every precision.
  Each run is a fresh process on the same stereo noise with the same thread count; the contenders
  alternate, round after round, in a rotating order, and each ratio to htdemucs is taken within a
  round (median and spread over the rounds). A run's peak RSS over the loaded model is the peak
  resident set after the model is built (``/proc/self/clear_refs`` resets the mark) minus the resident
  set at that point: input, output and every buffer of the separation.
- The fast precisions' outputs are compared with the fp32 output (SDR in dB; >= 40 dB is inaudible).
- Band layers: the band split and mask estimation of the ``bs-roformer`` package (a loop over bands)
  against ``bsrnn/layers.py`` at equal dimensions (vocals bands, stereo, dim 128, MLP 512, mask depth 2),
  forward+backward, alternated; > 1 means ours is faster.

Prints a table, then one JSON line: {"rtf", "peak_rss_gib", "band_layers_vs_bs_roformer", "threads", ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import finish  # noqa: E402

SR = 44100
HTDEMUCS = "htdemucs"
BSRNN_RUNS = {  # name -> (preset size, precision)
    "bsrnn_tiny": ("tiny", "fp32"),
    "bsrnn_paper": ("paper", "fp32"),
    "bsrnn_paper_bf16": ("paper", "bf16"),
    "bsrnn_paper_int8": ("paper", "int8"),
}
INAUDIBLE_DB = 40.0


# ---------------------------------------------------------------------------------------------- one run, own process
def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))


def _reset_peak() -> bool:
    """Reset VmHWM to the current resident set (Linux >= 4.0); False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _build(name: str):
    """``(model, run)``: the loaded model and a function ``(channels, samples) -> output`` separating with it."""
    if name == HTDEMUCS:
        from demucs.apply import apply_model
        from demucs.htdemucs import HTDemucs

        model = HTDemucs(sources=["drums", "bass", "other", "vocals"]).eval()

        def run(x):
            with torch.inference_mode():
                return apply_model(model, x[None], split=True, overlap=0.25, progress=False)[0]

        return model, run
    from bsrnn.model import BSRNN, BSRNNConfig
    from bsrnn.separator import Separator

    size, precision = BSRNN_RUNS[name]
    model = BSRNN(BSRNNConfig.preset(size, "vocals")).eval()
    sep = Separator(model, sample_rate=SR, precision=precision)
    return sep, sep.separate


def child(name: str, seconds: float, threads: int, out: str | None) -> dict:
    """Separate ``seconds`` of stereo noise with contender ``name`` in this process; time and memory."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)  # the same random weights for every precision of a size
    model, run = _build(name)
    base = _status_kib("VmRSS")
    reset = _reset_peak()
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((2, int(seconds * SR)), dtype=np.float32) * 0.1)
    t = time.perf_counter()
    y = run(x)
    wall = time.perf_counter() - t
    peak = _status_kib("VmHWM")
    if out:
        np.save(out, np.asarray(y, dtype=np.float32))
    del model
    return {"wall_s": wall, "rtf": wall / seconds, "over_model_gib": (peak - base) / 2**20, "peak_reset": reset}


def spawn(name: str, seconds: float, threads: int, out: str | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", name, "--seconds", str(seconds), "--threads", str(threads)]
    if out:
        cmd += ["--out", out]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
    if res.returncode != 0:
        raise SystemExit(f"{name} ({seconds:g} s) failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------- figures
def sdr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """``10 log10(|ref|^2 / |ref - est|^2)`` over the whole signal, in dB (inf when equal)."""
    ref, err = reference.astype(np.float64), reference.astype(np.float64) - estimate.astype(np.float64)
    num, den = float(np.sum(ref**2)), float(np.sum(err**2))
    return float("inf") if den == 0 else 10 * np.log10(num / den)


def band_layers(repeat: int, threads: int) -> tuple[list[float], list[float]]:
    """Forward+backward wall times (s) of bs-roformer's band split + mask estimator and ours, alternated."""
    from bs_roformer.bs_roformer import BandSplit as RoBandSplit
    from bs_roformer.bs_roformer import MaskEstimator as RoMaskEstimator

    from bsrnn.bands import BUILTIN_SPECS, band_edges
    from bsrnn.layers import BandSplit, MaskEstimation

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    bands = band_edges(BUILTIN_SPECS["vocals"])
    widths = tuple((e - s) * 4 for s, e in bands)  # (bins, stereo, re/im) per band
    dim, hidden = 128, 512
    ours = (BandSplit(bands, 4, dim), MaskEstimation(bands, 4, dim, hidden))
    theirs = (RoBandSplit(dim, widths), RoMaskEstimator(dim, widths, depth=2, mlp_expansion_factor=hidden // dim))
    x = torch.randn(2, 3 * SR // 512 + 1, sum(widths))  # batch 2 x 3 s at hop 512

    def step(mods):
        for m in mods:
            m.zero_grad(set_to_none=True)
        t = time.perf_counter()
        y = mods[1](mods[0](x))
        assert y.shape == x.shape
        y.square().mean().backward()
        return time.perf_counter() - t

    step(ours), step(theirs)  # warm-up
    t_ours, t_theirs = [], []
    for r in range(repeat):
        for which in ((ours, t_ours), (theirs, t_theirs))[:: 1 if r % 2 == 0 else -1]:
            which[1].append(step(which[0]))
    return t_ours, t_theirs


def spread(values: list[float]) -> str:
    return f"{min(values):.3g}-{max(values):.3g}" if len(values) > 1 else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--save", action="store_true")
    ap.add_argument("--quick", action="store_true", help="60 s input, 1 round, no 4-min runs (under 10 min)")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--repeat", type=int, default=None, help="rounds of the 60-s runs (default 3; --quick 1)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=60.0, help="input of the rounds, s (the issue's figures: 60)")
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads < 1 or (args.repeat is not None and args.repeat < 1):
        ap.error("--threads and --repeat must be 1 or more")
    if not 0 < args.seconds <= 3600:
        ap.error(f"--seconds {args.seconds}: give a length from just above 0 to 3600 s")
    if args.child:
        print(json.dumps(child(args.child, args.seconds, args.threads, args.out)))
        return
    try:
        import bs_roformer  # noqa: F401
        import demucs  # noqa: F401
    except ImportError as e:
        raise SystemExit(f"bench/peers.py needs the benchmark extras: pip install -e .[bench] ({e})") from None
    threads = args.threads
    rounds = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    names = [HTDEMUCS, *BSRNN_RUNS]
    runs: dict[str, list[dict]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for n in order:
                out = str(Path(tmp) / f"{n}.npy") if r == 0 and n.startswith("bsrnn_paper") else None
                runs[n].append(spawn(n, args.seconds, threads, out))
                print(f"  round {r + 1}/{rounds} {n}: rtf {runs[n][-1]['rtf']:.3f}", file=sys.stderr, flush=True)
        ref = np.load(Path(tmp) / "bsrnn_paper.npy")
        sdr = {n: sdr_db(ref, np.load(Path(tmp) / f"{n}.npy")) for n in BSRNN_RUNS if n.startswith("bsrnn_paper_")}
    rtf = {n: statistics.median(x["rtf"] for x in runs[n]) for n in names}
    ratio = {n: [a["rtf"] / b["rtf"] for a, b in zip(runs[n], runs[HTDEMUCS])] for n in BSRNN_RUNS}
    paper = ["bsrnn_paper"] + [n for n in sdr if sdr[n] >= INAUDIBLE_DB]
    best = min(paper, key=lambda n: rtf[n])

    long_s, long_label = (args.seconds, f"{args.seconds:g}s") if args.quick else (240.0, "4min")
    if args.quick:  # memory from the rounds' runs
        mem = {n: max(x["over_model_gib"] for x in runs[n]) for n in (HTDEMUCS, "bsrnn_paper")}
        long_rtf = {}
    else:
        long_runs = {n: spawn(n, long_s, threads) for n in (HTDEMUCS, "bsrnn_tiny", "bsrnn_paper")}
        mem = {n: long_runs[n]["over_model_gib"] for n in (HTDEMUCS, "bsrnn_paper")}
        long_rtf = {n: long_runs[n]["rtf"] for n in long_runs}
    t_ours, t_theirs = band_layers(3 if args.quick else 7, threads)
    band_ratio = statistics.median(t_theirs) / statistics.median(t_ours)

    print(f"separation on CPU, {threads} threads, stereo noise, random weights; {args.seconds:g} s x {rounds} rounds")
    print(f"{'contender':<20}{'rtf (median)':>14}{'vs htdemucs':>13}{'spread':>14}{'SDR to fp32 dB':>16}")
    for n in names:
        r = ratio.get(n)
        vs = f"{statistics.median(r):.2f}x" if r else "1"
        s = f"{sdr[n]:.1f}" if n in sdr else ""
        print(f"{n:<20}{rtf[n]:>14.3f}{vs:>13}{spread(r) if r else '':>14}{s:>16}")
    print(f"fastest paper precision within {INAUDIBLE_DB:g} dB of fp32: {best} (rtf {rtf[best]:.3f})")
    for n, v in long_rtf.items():
        print(f"{long_label} run: {n} rtf {v:.3f}")
    for n, v in mem.items():
        print(f"peak RSS over the loaded model, {long_label} stereo, {n}: {v:.3f} GiB")
    print(
        f"band split + mask estimation, fwd+bwd (median s): bs-roformer {statistics.median(t_theirs):.4f}, "
        f"ours {statistics.median(t_ours):.4f}, ratio {band_ratio:.2f}"
    )
    fig = {
        "rtf": {**{n: round(rtf[n], 4) for n in names}, "bsrnn_paper_best": round(rtf[best], 4)},
        "rtf_vs_htdemucs": {n: round(statistics.median(r), 3) for n, r in ratio.items()},
        "rtf_vs_htdemucs_spread": {n: [round(min(r), 3), round(max(r), 3)] for n, r in ratio.items()},
        "sdr_to_fp32_db": {n: round(v, 2) for n, v in sdr.items()},
        "bsrnn_paper_best": best,
        "peak_rss_gib": {
            f"bsrnn_paper_{long_label}_over_model": round(mem["bsrnn_paper"], 3),
            f"htdemucs_{long_label}_over_model": round(mem[HTDEMUCS], 3),
        },
        "band_layers_vs_bs_roformer": round(band_ratio, 2),
        "threads": threads,
        "rounds": rounds,
    }
    if long_rtf:
        fig[f"rtf_{long_label}"] = {n: round(v, 4) for n, v in long_rtf.items()}
    finish("peers", fig, args.save)


if __name__ == "__main__":
    main()
