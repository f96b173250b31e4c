"""Learning curve of the clean oracle: test uSDR of the tiny BSRNN against training steps.

Usage: python bench/oracle_curve.py [--save] [--targets vocals,bass] [--at 100,250,500,1000,2000] [--work DIR]
                                    [--accelerator gpu --device cuda]

The same rendered set and training settings as configuration (a) of bench/e2e.py (16 train + 4
test tracks of 20 s, render seed 0, batch 4 x 2 s, lr 3e-3), but one run per target that is
evaluated on the clean test split at every step of ``--at``, with a silent estimate (uSDR 0 dB by
definition) and the mixture as the estimate for reference. It answers how many steps the oracle
needs before e2e's gap-closed figure can measure separation rather than how much accompaniment a
model lets through. Prints a table, then one JSON line: {"usdr": {target: {steps: dB}}, "mixture_usdr", ...}.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import lightning as L
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import LEVELS, finish, render  # noqa: E402
from bench.e2e import train_settings  # noqa: E402
from curate.data.datasets import discover, load_source  # noqa: E402
from curate.scan import scan  # noqa: E402
from pipelines.config import model_config  # noqa: E402
from pipelines.evaluate import evaluate  # noqa: E402
from pipelines.metrics import usdr  # noqa: E402
from pipelines.train import train  # noqa: E402


class EvalAt(L.Callback):
    """Evaluate the model being trained on the clean test split after each step in ``at``."""

    def __init__(self, at: list[int], data: Path, target: str, device: str):
        self.at, self.data, self.target, self.device = set(at), data, target, device
        self.usdr: dict[int, float] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step in self.at and step not in self.usdr:
            model = pl_module.model
            was_training = model.training
            model.eval()
            res = evaluate({self.target: model}, self.data, subset="test", device=self.device)
            model.train(was_training)
            self.usdr[step] = round(float(res["usdr"].mean()), 3)
            print(
                f"[{time.strftime('%H:%M:%S')}] {self.target} step {step}: test uSDR {self.usdr[step]:.2f} dB",
                file=sys.stderr,
                flush=True,
            )


def mixture_usdr(data: Path, target: str) -> float:
    """Mean uSDR over the test tracks of the mixture taken as the ``target`` estimate (dB)."""
    import torch

    vals = []
    for track in discover(data, subset="test"):
        ref, _ = load_source(track.stems[target])
        mix, _ = load_source(track.mixture)
        vals.append(float(usdr(torch.from_numpy(ref)[None], torch.from_numpy(mix)[None])[0]))
    return round(float(np.mean(vals)), 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--save", action="store_true", help="write docs/benchmarks/oracle_curve.json")
    ap.add_argument("--targets", default="vocals,bass")
    ap.add_argument(
        "--at", default="100,250,500,1000,2000", help="steps at which to evaluate (the last is the run's length)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--level", default="equal", choices=LEVELS, help="as bench/e2e.py --level")
    ap.add_argument("--work", type=Path, default=None, help="keep (or reuse) the rendered data and runs here")
    ap.add_argument("--accelerator", default="auto")
    ap.add_argument("--device", default="cpu", help="torch device for evaluation")
    args = ap.parse_args()
    at = sorted(int(s) for s in args.at.split(","))
    targets = args.targets.split(",")
    t0 = time.perf_counter()
    tmp = None if args.work else tempfile.TemporaryDirectory()
    work = args.work or Path(tmp.name)
    clean = work / "clean"
    if not (clean / "test").is_dir():
        render(clean, train=16, test=4, seconds=20.0, seed=0, level=args.level)
    manifest = work / "clean.parquet"
    if not manifest.is_file():
        scan(clean, output=manifest, score=None)
    cfg = replace(train_settings(at[-1]), seed=args.seed)
    curves, mix = {}, {}
    for t in targets:
        cb = EvalAt(at, clean, t, args.device)
        train(
            manifest,
            model=model_config("tiny", t),
            config=cfg,
            out=work / "curve" / f"{t}-{args.seed}-{time.time_ns()}",
            export_dir=work / "curve-models",
            accelerator=args.accelerator,
            progress=False,
            callbacks=[cb],
        )
        curves[t] = {str(s): cb.usdr[s] for s in at}
        mix[t] = mixture_usdr(clean, t)
    minutes = (time.perf_counter() - t0) / 60
    print(
        f"clean oracle (tiny BSRNN, batch 4 x 2 s, lr 3e-3, seed {args.seed}) on 16 rendered train tracks; test uSDR "
        f"(dB) "
        f"on 4 test tracks; silent estimate = 0 dB; {minutes:.1f} min"
    )
    print(f"{'steps':>8}" + "".join(f"{t:>10}" for t in targets))
    for s in at:
        print(f"{s:>8}" + "".join(f"{curves[t][str(s)]:>10.2f}" for t in targets))
    print(f"{'mixture':>8}" + "".join(f"{mix[t]:>10.2f}" for t in targets))
    finish(
        "oracle_curve",
        {"usdr": curves, "mixture_usdr": mix, "seed": args.seed, "minutes": round(minutes, 1)},
        args.save,
    )
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
