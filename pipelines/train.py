"""``pipelines train``: train one BSRNN target on a manifest with Lightning.

Run folder ``out/``: ``config.yaml`` (resolved model + training settings and the manifest),
``hparams.yaml``, ``checkpoints/last.ckpt`` and ``checkpoints/best.ckpt`` (best validation uSDR; only
with validation tracks), ``logs/metrics.csv`` and ``logs/hparams.yaml`` (``tb/`` when ``tensorboard``
is installed), ``summary.json``; nothing else.
The layout is :class:`pipelines.runs.RunDir`'s. The best model is exported as
``{export_dir}/{target}/{target}.ckpt`` + ``hparams.yaml`` (the seed's layout), loadable with
:meth:`bsrnn.model.BSRNN.load`. Which paths other commands take as a model: :mod:`bsrnn.checkpoint`.
"""

from __future__ import annotations

import json
import sys
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import lightning as L
import pandas as pd
import yaml

from bsrnn.checkpoint import build_model, load_models, read_checkpoint
from bsrnn.model import BSRNNConfig
from curate.common.atomic import atomic_path, filling_dir, make_dirs, write_text
from curate.common.errors import StemcurateError
from curate.common.outputs import output_path
from curate.data.schema import read_manifest
from pipelines.budget import budget_lines, device_label, examples_per_second, resolve_precision, schedule_warning
from pipelines.config import TrainConfig, accelerator_device, config_dict, model_differences
from pipelines.data import (
    FragmentPool,
    TrainExamples,
    ValidExamples,
    fragment_corrupted,
    manifest_tracks,
    split_tracks,
)
from pipelines.runs import RunDir, check_target, manifest_digest
from pipelines.trainer import (
    LastCheckpoint,
    ManifestData,
    StepLines,
    WarmEMA,
    atomic_checkpoint_io,
    check_trainer_args,
    merge_logs,
    step_line_every,
)

LIGHTNING_PRECISION = {"fp32": "32-true", "bf16": "bf16-mixed"}
"""Lightning's name of each resolved training precision."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`train`: where the run stopped and the checkpoint it saved (None before the first step)."""

    def __init__(self, run: Path, step: int, checkpoint: Path | None):
        super().__init__(f"{run}: stopped at step {step}")
        self.run, self.step, self.checkpoint = run, step, checkpoint

    def resume_hint(self) -> str:
        if self.checkpoint is None:
            return f"stopped before the first step; nothing saved in {self.run}"
        return (
            f"stopped at step {self.step}; {self.checkpoint} saved, continue with: pipelines train --resume --out "
            f"{self.run}"
        )


@dataclass
class RunResult:
    """Where a training run left its outputs, and its figures."""

    run_dir: Path
    last_checkpoint: Path
    best_checkpoint: Path
    exported: Path
    global_step: int
    best_usdr: float | None
    train_tracks: list
    valid_tracks: list
    dropped: dict


def _check_export(path: Path, run: Path) -> None:
    """Refuse, before training, to export over a model that another run exported (or of unknown origin):
    an earlier model is never replaced without a word; the same run (a resume) may replace its own."""
    if not path.exists():
        return
    try:
        origin = (yaml.safe_load((path.parent / "hparams.yaml").read_text()) or {}).get("run")
    except (OSError, yaml.YAMLError, AttributeError):
        origin = None
    if origin != str(run.resolve()):
        raise StemcurateError(
            f"{path}: holds a model exported by {'run ' + str(origin) if origin else 'another run'}; "
            "pass another --export-dir (or remove it) so that it is not replaced"
        )


def export_model(checkpoint: str | Path, export_dir: str | Path, extra: dict | None = None) -> Path:
    """Write ``{export_dir}/{target}/{target}.ckpt`` (weights + model hparams) and ``hparams.yaml``."""
    cfg, state = read_checkpoint(checkpoint)
    model = build_model(cfg, state, checkpoint)
    with filling_dir(Path(export_dir) / cfg.target) as folder:  # not left empty when a write fails
        out = folder / f"{cfg.target}.ckpt"
        with atomic_path(out) as tmp:
            model.save(tmp)
        write_text(folder / "hparams.yaml", yaml.safe_dump({"model": asdict(cfg), **(extra or {})}, sort_keys=False))
    return out


def train(
    manifest: str | Path,
    *,
    model: BSRNNConfig,
    config: TrainConfig,
    out: str | Path,
    resume: bool = False,
    init_from: str | Path | None = None,
    accelerator: str = "auto",
    devices: int | str = "auto",
    strategy: str = "auto",
    num_nodes: int = 1,
    export_dir: str | Path = "saved_models",
    progress: bool = True,
    callbacks: list | None = None,
) -> RunResult:
    """Train ``model.target`` on the fragments of ``manifest``; see the module docstring for outputs.

    ``resume`` continues ``out/checkpoints/last.ckpt`` at its global step (up to ``config.max_steps``);
    ``init_from`` starts from a trained model's weights (any model source of :mod:`bsrnn.checkpoint`
    holding a ``model.target`` model; model hyperparameters must match);
    ``progress``: first the expected examples per second on the run's device and the run's duration at that
    rate (:mod:`pipelines.budget`, a second or two of timing), then Lightning's progress bar where stderr is a
    terminal, else a line every twentieth of the run and at least ten steps apart
    (:class:`~pipelines.trainer.StepLines`: step, loss, validation uSDR, seconds); ``progress=False`` prints
    none of this. A run that ends before its learning-rate warm-up does is warned about on stderr.
    A run shorter than ``config.val_every`` steps validates once, at its end.
    ``callbacks`` are extra Lightning callbacks.
    """
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    from pipelines.module import SeparationModule, ema_decay, warmup_end

    check_trainer_args(accelerator=accelerator, devices=devices, strategy=strategy, num_nodes=num_nodes)
    rd, export_dir = RunDir(out), output_path(export_dir)
    run, last = rd.path, rd.last
    if resume:
        step = rd.resume_step()
        if config.max_steps <= step:
            raise StemcurateError(
                f"--max-steps {config.max_steps}: the run in {run} is already at step {step}; "
                "give a larger --max-steps to train it further"
            )
    else:
        rd.check_new()
    for name in ("crop_s", "valid_crop_s"):  # the STFT needs a full window
        if getattr(config, name) * model.sample_rate < model.n_fft:
            raise StemcurateError(
                f"training settings: {name} {getattr(config, name)} s is shorter than the model's "
                f"STFT window (n_fft {model.n_fft} at {model.sample_rate} Hz)"
            )
    _check_export(Path(export_dir) / model.target / f"{model.target}.ckpt", run)
    m = read_manifest(manifest)
    if m.frame.empty:
        raise StemcurateError(
            f"{manifest}: manifest has no fragments (see the scan's problems file: tracks shorter than the detection "
            f"window?)"
        )
    check_target(manifest, set(m.frame["stem"]), model.target)
    train_tracks, valid_tracks = split_tracks(manifest_tracks(m), config)
    m.check_files(manifest, tracks=train_tracks + valid_tracks)
    truth = fragment_corrupted(m)
    train_pool = FragmentPool(m, train_tracks, truth=truth)
    train_ds = TrainExamples(
        train_pool,
        model.target,
        config,
        sample_rate=model.sample_rate,
        channels=model.channels,
        length=(config.max_steps + 1) * config.batch_size * 1024,
    )
    valid_ds = (
        ValidExamples(
            FragmentPool(m, valid_tracks, truth=truth),
            model.target,
            config,
            sample_rate=model.sample_rate,
            channels=model.channels,
        )
        if valid_tracks
        else None
    )

    warning = schedule_warning(config)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    L.seed_everything(config.seed, workers=True, verbose=False)
    module = SeparationModule(asdict(model), asdict(config))
    if init_from is not None and not resume:
        _, init_model = load_models(init_from, [model.target])[model.target]
        init_cfg, state = init_model.config, init_model.state_dict()
        diff = model_differences(model, init_cfg)
        if diff:
            raise StemcurateError(
                f"--init-from {init_from}: model hyperparameters differ from the checkpoint's ({'; '.join(diff)})"
            )
        module.model.load_state_dict(state)

    make_dirs(run, export_dir)  # a folder that cannot be written fails now, not after training
    rd.clear_partial_writes()  # a kill during a checkpoint write left its temporary file
    cfg_data = {
        **config_dict(model, config),
        "manifest": str(Path(manifest).resolve()),
        "manifest_digest": manifest_digest(m),
        "init_from": str(init_from) if init_from else None,
        "export_dir": str(export_dir),
        "train_tracks": train_tracks,
        "valid_tracks": valid_tracks,
    }
    if resume:
        rd.check_resume(cfg_data)
    else:
        write_text(rd.config_file, yaml.safe_dump(cfg_data, sort_keys=False))
        write_text(run / "hparams.yaml", yaml.safe_dump(config_dict(model, config), sort_keys=False))

    has_valid = valid_ds is not None and len(valid_ds) > 0
    precision = resolve_precision(config.precision, accelerator_device(accelerator))
    checkpointing: list = []
    if has_valid:
        checkpointing.append(
            ModelCheckpoint(
                dirpath=rd.checkpoints,
                filename=rd.best.stem,
                monitor="val/usdr",
                mode="max",
                save_top_k=1,
                save_last=False,
                enable_version_counter=False,
            )
        )
    decay = ema_decay(config)
    if decay > 0:
        # averaging starts where the warm-up ends (the weights before it are far from where the run goes);
        # buffers are constants (STFT window, band layout): averaging them would only add rounding
        checkpointing.append(WarmEMA(decay=decay, use_buffers=False, update_starting_at_step=warmup_end(config)))
    checkpointing.append(LastCheckpoint(last, config.val_every))
    bar = progress and sys.stderr.isatty()  # a terminal: Lightning's bar; a log or a pipe: a line now and then
    if progress and not bar:
        checkpointing.append(StepLines(step_line_every(config.max_steps), config.max_steps))
    metrics_csv = rd.metrics_csv
    earlier = pd.read_csv(metrics_csv) if resume and metrics_csv.is_file() else None  # CSVLogger deletes it
    loggers = [CSVLogger(run, name=rd.logs.name, version="")]
    try:
        import tensorboard  # noqa: F401
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(run, name="tb", version=""))
    except ImportError:
        pass

    trainer = L.Trainer(
        accelerator=accelerator,
        precision=LIGHTNING_PRECISION[precision],
        devices=devices,
        strategy=strategy,
        num_nodes=num_nodes,
        max_steps=config.max_steps,
        max_epochs=-1,
        gradient_clip_val=config.grad_clip,
        # a run shorter than val_every still validates once, at its end, and so has a best.ckpt
        val_check_interval=min(config.val_every, config.max_steps) if has_valid else None,
        check_val_every_n_epoch=None if has_valid else 1,
        limit_val_batches=1.0 if has_valid else 0,
        num_sanity_val_steps=0,
        callbacks=checkpointing + list(callbacks or []),
        logger=loggers,
        # without validation, no default checkpoint under logs/ (LastCheckpoint writes last.ckpt)
        enable_checkpointing=has_valid,
        log_every_n_steps=max(1, min(10, config.val_every // 2, config.max_steps)),
        use_distributed_sampler=False,
        enable_progress_bar=bar,
        enable_model_summary=False,
        default_root_dir=run,
        plugins=[atomic_checkpoint_io()],
    )
    if progress and trainer.global_rank == 0:
        device = trainer.strategy.root_device
        rate = examples_per_second(
            model, batch_size=config.batch_size, crop_s=config.crop_s, device=device, precision=precision
        )
        lines = budget_lines(
            model, config, rate, device_label(device), start_step=step if resume else 0, precision=precision
        )
        for line in lines:
            print(line, file=sys.stderr, flush=True)
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            # "not resumable": StepSampler gives a resumed run the examples it would have seen
            message=".*(does not have many workers|num_workers|LeafSpec|isinstance.*treespec|exists and is not "
            "empty|not resumable).*",
        )
        try:
            trainer.fit(
                module,
                datamodule=ManifestData(train_ds, valid_ds, config),
                ckpt_path=last if resume else None,
                weights_only=True if resume else None,
            )
        except SystemExit:  # Lightning turns Ctrl-C into exit 1 after the callbacks' on_exception
            if not trainer.interrupted:
                raise
            raise TrainingInterrupted(run, int(trainer.global_step), last if last.is_file() else None) from None
    if trainer.global_rank != 0:
        return None  # type: ignore[return-value]
    if earlier is not None:
        merge_logs(earlier, metrics_csv)
    best = rd.best if rd.best.is_file() else last
    best_score = checkpointing[0].best_model_score if has_valid else None
    exported = export_model(best, export_dir, {"train": asdict(config), "run": str(run.resolve())})
    dropped = {k: (d / s if s else None) for k, (d, s) in module.drop_counts.items()}
    result = RunResult(
        run,
        last,
        best,
        exported,
        int(trainer.global_step),
        float(best_score) if best_score is not None else None,
        train_tracks,
        valid_tracks,
        dropped,
    )
    summary = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(result).items()}
    write_text(rd.summary, json.dumps(summary, indent=2))
    return result
