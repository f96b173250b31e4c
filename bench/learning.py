"""Does the trainer learn real music? The learning curve of `pipelines train` on real songs at fixed
wall-clock budgets, beside open-unmix's trainer on the same songs and the same budgets.

Usage: python bench/learning.py [--budgets 10,30] [--model small] [--set key=value ...] [--target vocals]
                               [--no-openunmix] [--openunmix-batch 16] [--work DIR] [--save [--save-as NAME]] [--quick]
                               [--accelerator gpu]

Data: the 94 real MUSDB18 excerpts of ../shared/data/musdb18-7s/train (6.8 s each), split once by a fixed
permutation (seed 0) into 62 training songs, 8 validation songs and 24 held-out test songs; the
benchmark's folder links them as ``data/train`` (training + validation) and ``data/test``.
Ours: `curate scan` of ``data/train`` (SAD only, no scores: the songs are clean), then
`pipelines.train.train` with the default settings (or ``--model``/``--set``), the validation songs named,
``max_steps`` set from the expected examples per second (:func:`pipelines.budget.examples_per_second`) to
fill the budget, and stopped at the budget if it runs longer; the exported (best validation) model is scored.
open-unmix: ``bench/openunmix_peer.py`` (its recipe, batch ``--openunmix-batch``), one run to the largest
budget with its model scored as it stands at each budget (its schedule does not depend on the budget,
so that is the model a shorter run would give).
Both: 2 torch threads on the CPU (nothing else should run), budgets counted from the first training
step, validation included; scored on the 24 test songs with `pipelines.evaluate.score_estimates`
(uSDR mean over songs whose target is not silent, cSDR median), the mixture file as input.
Prints a table, then one JSON line: {"usdr_10min", "usdr_30min", "openunmix_usdr_10min",
"openunmix_usdr_30min", "examples_per_s", "preset", ...} (one key per budget given).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import asdict
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import finish, link_real_songs, log  # noqa: E402
from bsrnn.separator import Separator  # noqa: E402
from curate.data.conform import to_channels  # noqa: E402
from curate.data.datasets import MIXTURE, discover  # noqa: E402
from pipelines.budget import examples_per_second  # noqa: E402
from pipelines.config import auto_size, model_config, parse_sets, train_config  # noqa: E402
from pipelines.evaluate import score_estimates  # noqa: E402


def prepare(work: Path) -> tuple[Path, Path, list[str], list[str], list[str]]:
    """Link the songs into ``work/data/{train,test}`` and scan the train subset; ``(data root, manifest, train,
    valid, test track names)``."""
    from curate.scan import scan

    data = work / "data"
    train, valid, test = link_real_songs(data)
    manifest = work / "train.parquet"
    if not manifest.is_file():
        log(f"scanning {len(train) + len(valid)} songs (SAD only)")
        scan(data, output=manifest, subset="train", score=None, jobs=2)
    return data, manifest, train, valid, test


def test_tracks(data: Path, target: str) -> list[tuple[str, np.ndarray, np.ndarray, int]]:
    """``(name, mixture, target reference, rate)`` of every test song, stereo float32."""
    out = []
    for track in discover(data, subset="test"):
        audio, rate = track.load_all([target, MIXTURE])
        out.append((track.name, to_channels(audio[MIXTURE], 2), to_channels(audio[target], 2), rate))
    return out


def score(separate, tests, target: str) -> dict:
    """uSDR mean and std over songs with a non-silent reference, cSDR median, and how many songs."""
    rows = []
    for name, mix, ref, rate in tests:
        est = to_channels(np.asarray(separate(mix))[:, : ref.shape[1]], 2)
        rows += score_estimates(name, {target: ref}, {target: est}, rate)
    frame = pd.DataFrame(rows)
    ok = frame[~frame["silent"]]
    return {
        "usdr": round(float(ok["usdr"].mean()), 3),
        "usdr_std": round(float(ok["usdr"].std(ddof=0)), 3),
        "csdr": round(float(ok["csdr"].median()), 3),
        "songs": int(len(ok)),
    }


class Deadline(L.Callback):
    """Stop training once ``seconds`` have passed since the first training step began; at the end of the
    warm-up (``replan_at`` steps), set the run's ``max_steps`` (and with it the cosine decay, which has not
    begun) from the steps per second of its second half, validation included, so that the run fills the budget.
    The run is then the one ``pipelines train --max-steps N`` gives, N chosen to fit the budget on this machine."""

    def __init__(self, seconds: float, *, replan_at: int | None = None, fill: float = 0.97):
        self.seconds, self.t0, self.elapsed, self.steps = seconds, None, 0.0, 0
        self.replan_at, self.fill, self.replanned, self.half = replan_at, fill, None, None

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if self.t0 is None:
            self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.elapsed, self.steps = time.perf_counter() - self.t0, trainer.global_step
        if self.replan_at is not None and self.half is None and self.steps >= self.replan_at // 2:
            self.half = (self.steps, self.elapsed)  # the rate is measured after the first reads warmed the caches
        if self.replan_at is not None and self.replanned is None and self.steps >= self.replan_at:
            rate = (self.steps - self.half[0]) / max(self.elapsed - self.half[1], 1e-9)
            steps = self.steps + int((self.seconds - self.elapsed) * rate * self.fill)
            self.replanned = max(self.steps + 1, min(trainer.max_steps, steps))
            module.cfg.max_steps = self.replanned
            trainer.fit_loop.epoch_loop.max_steps = self.replanned
            log(f"ours: {rate:.2f} steps/s over the warm-up; max_steps set to {self.replanned}")
        if self.elapsed >= self.seconds:
            trainer.should_stop = True


def run_ours(args, size: str, data: Path, manifest: Path, valid: list[str], budget_s: float, tests, work: Path) -> dict:
    from bsrnn.model import BSRNN
    from pipelines.train import train

    sets = parse_sets(args.set)
    model = model_config(size, args.target, sets)
    probe = train_config(sets, valid_tracks=valid, seed=args.seed)
    device = "cuda" if args.accelerator == "gpu" else "cpu"
    rate = examples_per_second(
        model, batch_size=probe.batch_size, crop_s=probe.crop_s, device=device, precision=probe.precision, seconds=5
    )
    steps = max(20, int(budget_s * rate / probe.batch_size * args.fill))
    cfg = train_config(
        sets,
        valid_tracks=valid,
        seed=args.seed,
        max_steps=int(steps * 1.5) if probe.warmup_steps < steps / 2 else steps,  # room for the re-plan
        val_every=sets.get("val_every", max(10, steps // 10)),
    )
    name = f"{Path(size).stem}-{budget_s / 60:g}min-{args.tag}"
    replan = probe.warmup_steps if probe.schedule != "seed" and cfg.max_steps > steps else None
    deadline = Deadline(budget_s, replan_at=replan)
    log(f"ours: {name}: {steps} steps planned at {rate:.2f} examples/s, settings {json.dumps(sets)}")
    result = train(
        manifest,
        model=model,
        config=cfg,
        out=work / "runs" / name,
        export_dir=work / "models" / name,
        accelerator=args.accelerator,
        devices=1,
        progress=False,
        callbacks=[deadline],
    )
    net = BSRNN.load(result.exported)
    sep = Separator(net, sample_rate=net.config.sample_rate, device=device)
    figures = score(lambda mix: sep.separate(mix).numpy(), tests, args.target)
    metrics = pd.read_csv(result.run_dir / "logs" / "metrics.csv")
    curve = metrics.dropna(subset=["val/usdr"])[["step", "val/usdr"]] if "val/usdr" in metrics else None
    return {
        **figures,
        "valid_usdr": round(result.best_usdr, 3) if result.best_usdr is not None else None,
        "steps": int(result.global_step),
        "planned_steps": steps,
        "replanned_steps": deadline.replanned,
        "train_s": round(deadline.elapsed, 1),
        "examples": int(result.global_step) * cfg.batch_size,
        "examples_per_s": round(int(result.global_step) * cfg.batch_size / max(deadline.elapsed, 1e-9), 3),
        "expected_examples_per_s": round(rate, 3),
        "crop_s": cfg.crop_s,
        "batch": cfg.batch_size,
        "valid_curve": [[int(s), round(float(u), 3)] for s, u in curve.to_numpy()] if curve is not None else [],
        "model": asdict(model) | {"bands": None},
    }


def run_openunmix(args, data: Path, train: list[str], valid: list[str], budgets_s: list[float], tests) -> dict:
    from bench.openunmix_peer import UMXTrainer, load_songs

    log(f"open-unmix: loading {len(train) + len(valid)} songs")
    songs = load_songs(data, "train", train, args.target), load_songs(data, "train", valid, args.target)
    trainer = UMXTrainer(
        *songs, seed=args.seed, batch_size=args.openunmix_batch, device="cuda" if args.accelerator == "gpu" else "cpu"
    )
    out = {}

    def at_budget(budget_s, t):
        figures = score(t.separate, tests, args.target)
        out[budget_s] = {**figures, "steps": t.steps, "examples": t.examples, "examples_per_s": t.examples / budget_s}
        log(f"open-unmix at {budget_s / 60:g} min: {t.steps} steps, test uSDR {figures['usdr']:.2f} dB")

    log(f"open-unmix: training to {max(budgets_s) / 60:g} min (batch {args.openunmix_batch})")
    trainer.run(budgets_s, at_budget)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budgets", default="10,30", help="comma-separated training budgets, minutes")
    ap.add_argument(
        "--model",
        default="auto",
        help="ours: auto, a preset or a YAML file (pipelines train --model), or one per budget (tiny,small)",
    )
    ap.add_argument("--set", action="append", default=[], help="ours: key=value training/model setting")
    ap.add_argument("--target", default="vocals")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fill", type=float, default=0.95, help="fraction of the budget the planned steps fill")
    ap.add_argument("--no-openunmix", action="store_true", help="ours only")
    ap.add_argument("--no-ours", action="store_true", help="open-unmix only")
    ap.add_argument("--openunmix-batch", type=int, default=16, help="open-unmix's batch (its recipe: 16)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/stemcurate-learning"), help="kept between runs")
    ap.add_argument("--tag", default="run", help="name of our runs in --work")
    ap.add_argument("--accelerator", default="cpu", choices=("cpu", "gpu"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="budgets of 1 minute (a smoke test)")
    ap.add_argument("--save", action="store_true", help="write docs/benchmarks/learning.json (or --save-as NAME)")
    ap.add_argument("--save-as", default=None, help="with --save: write docs/benchmarks/NAME.json instead")
    args = ap.parse_args()
    try:
        budgets = [float(b) for b in ("1" if args.quick else args.budgets).split(",")]
    except ValueError:
        ap.error(f"--budgets {args.budgets}: give minutes, e.g. 10,30")
    models = [auto_size(args.accelerator) if m == "auto" else m for m in args.model.split(",")]
    if len(models) not in (1, len(budgets)):
        ap.error(f"--model {args.model}: give one model, or one per budget ({len(budgets)})")
    models = dict(zip(budgets, models * len(budgets) if len(models) == 1 else models))
    if not budgets or not all(np.isfinite(b) and b > 0 for b in budgets):
        ap.error("--budgets: each budget must be a positive number of minutes")
    if args.save_as is not None and not re.fullmatch(r"[A-Za-z0-9_-]+", args.save_as):
        ap.error(f"--save-as {args.save_as!r}: a plain file name of letters, digits, _ and -")
    if args.threads < 1 or not 0 < args.fill <= 1 or args.openunmix_batch < 1:
        ap.error("--threads and --openunmix-batch must be >= 1, --fill within (0, 1]")
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    data, manifest, train, valid, test = prepare(args.work)
    tests = test_tracks(data, args.target)
    ours = {}
    if not args.no_ours:
        for b in budgets:
            ours[b] = run_ours(args, models[b], data, manifest, valid, b * 60, tests, args.work)
            log(f"ours at {b:g} min: test uSDR {ours[b]['usdr']:.2f} dB, {ours[b]['steps']} steps")
    umx = {} if args.no_openunmix else run_openunmix(args, data, train, valid, [b * 60 for b in budgets], tests)
    mixture = score(lambda mix: mix, tests, args.target)

    print(
        f"{args.target}, {len(test)} held-out real songs ({mixture['songs']} with a {args.target} reference); "
        f"mixture as the estimate: uSDR {mixture['usdr']:.2f} dB"
    )
    print(f"{'trainer':<28}{'budget':>8}{'steps':>7}{'ex/s':>7}{'val uSDR':>10}{'uSDR':>8}{'± std':>7}{'cSDR':>7}")
    for b in budgets:
        for label, r in ((f"ours ({Path(models[b]).stem})", ours.get(b)), ("open-unmix", umx.get(b * 60))):
            if r:
                val = f"{r['valid_usdr']:.2f}" if r.get("valid_usdr") is not None else "-"
                print(
                    f"{label:<28}{b:>6g} m{r['steps']:>7}{r['examples_per_s']:>7.2f}{val:>10}"
                    f"{r['usdr']:>8.2f}{r['usdr_std']:>7.2f}{r['csdr']:>7.2f}"
                )
    figures: dict = {}
    for b in budgets:
        key = f"{b:g}min"
        if b in ours:
            figures[f"usdr_{key}"] = ours[b]["usdr"]
            figures[f"csdr_{key}"] = ours[b]["csdr"]
        if b * 60 in umx:
            figures[f"openunmix_usdr_{key}"] = umx[b * 60]["usdr"]
            figures[f"openunmix_csdr_{key}"] = umx[b * 60]["csdr"]
    first = ours[budgets[0]] if ours else None
    figures.update(
        examples_per_s=first["examples_per_s"] if first else None,
        preset=models[budgets[0]] if len(set(models.values())) == 1 else {f"{b:g}min": m for b, m in models.items()},
        settings=parse_sets(args.set),
        target=args.target,
        mixture_usdr=mixture["usdr"],
        ours={f"{b:g}min": r for b, r in ours.items()},
        openunmix={f"{b / 60:g}min": r for b, r in umx.items()},
        openunmix_batch=args.openunmix_batch,
        device=f"cpu, {args.threads} threads" if args.accelerator == "cpu" else torch.cuda.get_device_name(0),
        songs={"train": len(train), "valid": len(valid), "test": len(test)},
    )
    finish(args.save_as or ("learning" if args.accelerator == "cpu" else "learning_gpu"), figures, args.save)


if __name__ == "__main__":
    main()
