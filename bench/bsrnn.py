"""BSRNN speed on CPU: vectorised band layers vs a per-band loop, whole model, separation RTF, memory.

Usage: python bench/bsrnn.py [--save] [--quick] [--device cuda]
Prints a table, then one JSON line: {"band_layers_speedup", "model_speedup", "params_paper",
"rtf_tiny", "rtf_paper", "peak_rss_gib_4min"}. ``--device cuda``: the band layers and the whole model
against the loop on the GPU, forward+backward (issue 23, item 6), and the separation real-time factors
there; no CPU memory figure; ``--save`` then writes docs/benchmarks/bsrnn_gpu.json.
"""

from __future__ import annotations

import argparse
import copy
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import best_time, finish  # noqa: E402
from bsrnn.bands import BUILTIN_SPECS, band_edges  # noqa: E402
from bsrnn.layers import BandSplit, MaskEstimation  # noqa: E402
from bsrnn.model import BSRNN, BSRNNConfig  # noqa: E402
from bsrnn.separator import Separator  # noqa: E402
from tests.bsrnn.loop_reference import BandSplitLoop, MaskEstimationLoop, copy_band_split, copy_mask_estimation  # noqa: E402

SR = 44100


def synced(run, device: torch.device):
    """``run`` followed by a wait for the device's queued work (timing a GPU needs it)."""

    def call():
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return call


def fwd_bwd(modules, x):
    def run():
        z = modules[0](x)
        y = modules[1](z)
        y.square().mean().backward()

    return run


def band_layers(repeat: int, device: torch.device = torch.device("cpu")) -> tuple[float, float]:
    bands = band_edges(BUILTIN_SPECS["vocals"])
    t = 3 * SR // 512 + 1
    x = torch.randn(2, t, bands[-1][1] * 4, device=device)
    loop = (BandSplitLoop(bands, 4, 128), MaskEstimationLoop(bands, 4, 128, 512))
    vec = (BandSplit(bands, 4, 128), MaskEstimation(bands, 4, 128, 512))
    copy_band_split(loop[0], vec[0])
    copy_mask_estimation(loop[1], vec[1])
    loop, vec = tuple(m.to(device) for m in loop), tuple(m.to(device) for m in vec)
    return (
        best_time(synced(fwd_bwd(loop, x), device), repeat),
        best_time(synced(fwd_bwd(vec, x), device), repeat),
    )


def whole_model(repeat: int, device: torch.device = torch.device("cpu")) -> tuple[float, float]:
    cfg = BSRNNConfig.preset("paper", "vocals", num_layers=2)
    vec = BSRNN(cfg)
    loop = copy.deepcopy(vec)
    bands = band_edges(cfg.bands)
    loop.band_split, loop.mask = BandSplitLoop(bands, 4, 128), MaskEstimationLoop(bands, 4, 128, 512)
    copy_band_split(loop.band_split, vec.band_split)
    copy_mask_estimation(loop.mask, vec.mask)
    loop, vec = loop.to(device), vec.to(device)
    x = torch.randn(2, 2, 3 * SR, device=device) * 0.1

    def step(model):
        def run():
            model.zero_grad()
            model(x).square().mean().backward()

        return synced(run, device)

    return best_time(step(loop), repeat), best_time(step(vec), repeat)


def rtf(size: str, seconds: float, device: torch.device = torch.device("cpu")) -> float:
    torch.manual_seed(0)
    model = BSRNN(BSRNNConfig.preset(size, "vocals")).eval()
    x = torch.randn(2, int(seconds * SR)) * 0.1
    sep = Separator(model, sample_rate=SR, device=device)
    sep.separate(x[:, :SR])  # warm-up (a GPU's first call builds its kernels)
    t = time.perf_counter()
    sep.separate(x)
    return (time.perf_counter() - t) / seconds


def peak_rss_child(seconds: float) -> float:
    """Peak RSS (GiB, VmHWM) of a fresh process that separates ``seconds`` of stereo with the paper model.

    (``ru_maxrss`` of a child counts the parent's pages it had before ``exec``; VmHWM does not.)"""
    code = (
        "import torch,sys; sys.path.insert(0, '.');"
        "from bsrnn.model import BSRNN, BSRNNConfig; from bsrnn.separator import Separator;"
        f"m=BSRNN(BSRNNConfig.preset('paper','vocals')).eval(); x=torch.randn(2,{int(seconds * SR)})*0.1;"
        "Separator(m, sample_rate=44100, batch_size=2).separate(x);"
        "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        check=True,
    )
    return int(out.stdout.strip().splitlines()[-1]) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--save", action="store_true")
    ap.add_argument("--quick", action="store_true", help="shorter signals for RTF and memory (not the issue's figures)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: no CUDA device here")
    torch.manual_seed(0)
    gpu = device.type == "cuda"
    loop_t, vec_t = band_layers(20 if gpu else 3, device)
    model_loop_t, model_vec_t = whole_model(10 if gpu else 2, device)
    params = sum(p.numel() for p in BSRNN(BSRNNConfig.preset("paper", "vocals")).parameters())
    rtf_len, mem_len = (12.0, 30.0) if args.quick else (60.0, 240.0)
    rtf_tiny, rtf_paper = rtf("tiny", rtf_len, device), rtf("paper", rtf_len, device)
    rss = float("nan") if gpu else peak_rss_child(mem_len)
    fig = {
        "band_layers_speedup": round(loop_t / vec_t, 2),
        "model_speedup": round(model_loop_t / model_vec_t, 2),
        "params_paper": int(params),
        "rtf_tiny": round(rtf_tiny, 4),
        "rtf_paper": round(rtf_paper, 3),
        "peak_rss_gib_4min": round(rss, 2),
    }
    where = torch.cuda.get_device_name(device) if gpu else f"CPU ({torch.get_num_threads()} threads)"
    print(f"BSRNN on {where}, vocals spec, batch 2 x 3 s stereo, forward+backward")
    print(f"{'measure':<44}{'loop':>10}{'vectorised':>12}{'ratio':>8}")
    print(f"{'band split + mask estimation (s)':<44}{loop_t:>10.3f}{vec_t:>12.3f}{fig['band_layers_speedup']:>8}")
    print(f"{'whole model, 2 layers (s)':<44}{model_loop_t:>10.3f}{model_vec_t:>12.3f}{fig['model_speedup']:>8}")
    print(f"parameters, paper size: {params:,}")
    print(f"separation real-time factor ({rtf_len:g} s stereo): tiny {rtf_tiny:.4f}, paper {rtf_paper:.3f}")
    if gpu:
        del fig["peak_rss_gib_4min"]
        fig["device"] = where
    else:
        print(f"peak RSS separating {mem_len / 60:g} min with the paper model: {rss:.2f} GiB")
    finish("bsrnn_gpu" if gpu else "bsrnn", fig, args.save)


if __name__ == "__main__":
    main()
