"""Training throughput on this machine: examples per second of the real trainer (data loading,
forward, backward, optimiser step) for every model size (tiny, small, medium, paper).

Usage: python bench/train.py [--save] [--quick] [--accelerator gpu]
A 4-track `curate synth` set is scanned (no scores) and trained on with `pipelines.train.train`
(batch 4 x 3 s stereo for tiny and small, 2 x 3 s for medium and paper); the first step (warm-up) is not timed.
Prints a table, then one JSON line: {"tiny_examples_per_s", "small_examples_per_s", "medium_examples_per_s",
"paper_examples_per_s"} (with ``--accelerator gpu``: also "device"; ``--save`` then writes
docs/benchmarks/train_gpu.json).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import finish  # noqa: E402
from curate.scan import scan  # noqa: E402
from curate.simulate.synth import synth_dataset  # noqa: E402
from pipelines.config import model_config, train_config  # noqa: E402
from pipelines.train import train  # noqa: E402


class StepTimer(L.Callback):
    """Wall time of every training step (batch fetch excluded, the step itself included)."""

    def __init__(self):
        self.times: list[float] = []
        self._last = None

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        now = time.perf_counter()
        if self._last is not None:
            self.times.append(now - self._last)  # includes loading the next batch
        self._last = now


def throughput(
    manifest: Path, work: Path, size: str, batch: int, steps: int, accelerator: str = "cpu"
) -> tuple[float, float]:
    timer = StepTimer()
    cfg = train_config(
        {},
        batch_size=batch,
        max_steps=steps,
        valid_fraction=0.0,
        val_every=10_000,
        schedule="constant",
        warmup_steps=0,
        num_workers=0 if accelerator == "cpu" else 4,
    )
    train(
        manifest,
        model=model_config(size, "vocals"),
        config=cfg,
        out=work / f"{size}-{batch}",
        export_dir=work / "exp",
        accelerator=accelerator,
        devices=1,
        progress=False,
        callbacks=[timer],
    )
    per_step = sum(timer.times) / len(timer.times)
    return batch / per_step, per_step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--save", action="store_true", help="write docs/benchmarks/train.json")
    ap.add_argument("--quick", action="store_true", help="fewer steps")
    ap.add_argument("--accelerator", default="cpu", help="cpu or gpu (then larger batches and more steps)")
    args = ap.parse_args()
    gpu = args.accelerator != "cpu"
    torch.set_num_threads(torch.get_num_threads())
    # batch and timed steps per size (GPU: larger batches, more steps)
    plan = {"tiny": (4, 21), "small": (4, 9), "medium": (2, 6), "paper": (2, 4)}
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        synth_dataset(work / "data", tracks=4, test_tracks=0, seconds=12.0, seed=0)
        scan(work / "data", output=work / "m.parquet", score=None)
        for size, (batch, steps) in plan.items():
            batch, steps = (batch * 4, steps * 3) if gpu else (batch, steps)
            steps = max(3, steps // 3) if args.quick else steps
            rows[size] = (batch, *throughput(work / "m.parquet", work, size, batch, steps, args.accelerator))
    device = (
        torch.cuda.get_device_name(0)
        if gpu and torch.cuda.is_available()
        else f"cpu, {torch.get_num_threads()} threads"
    )
    print(f"{'model':<8}{'batch':>6}{'s/step':>10}{'examples/s':>12}   (3 s stereo crops, {device})")
    for size, (batch, rate, step) in rows.items():
        print(f"{size:<8}{batch:>6}{step:>10.3f}{rate:>12.3f}")
    figures = {f"{size}_examples_per_s": round(rate, 4) for size, (_, rate, _) in rows.items()}
    finish("train_gpu" if gpu else "train", {**figures, "device": device} if gpu else figures, args.save)


if __name__ == "__main__":
    main()
