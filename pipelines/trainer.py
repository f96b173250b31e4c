"""Lightning plumbing of ``pipelines train``: the data module, the ``last.ckpt`` callback, progress lines,
atomic checkpoint writes, the up-front check of trainer options, and the metrics log kept across resumes."""

from __future__ import annotations

import logging
import sys
import time
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging
from torch.utils.data import DataLoader

from curate.common.atomic import atomic_path
from curate.common.errors import StemcurateError
from pipelines.config import TrainConfig
from pipelines.data import StepSampler


class LastCheckpoint(L.Callback):
    """Save ``last.ckpt`` every ``every`` steps and when an epoch ends (one per run, two when it was resumed
    in the middle of one); listed after the EMA callback, so a checkpoint holds the EMA state of the same step
    (every rank takes part, rank 0 writes)."""

    def __init__(self, path: Path, every: int):
        self.path, self.every = path, every
        self._interrupted = False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step % self.every == 0:
            trainer.save_checkpoint(self.path, weights_only=False)

    def on_train_epoch_end(self, trainer, pl_module):
        trainer.save_checkpoint(self.path, weights_only=False)

    def on_exception(self, trainer, pl_module, exception):
        """Ctrl-C: save the step reached, so that ``--resume`` goes on from it."""
        if isinstance(exception, KeyboardInterrupt) and trainer.global_step > 0:
            self._interrupted = True
            try:
                trainer.save_checkpoint(self.path, weights_only=False)
            finally:
                self._interrupted = False

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        """A checkpoint saved on Ctrl-C is saved as at the end of the last batch whose update was made, the point
        from which Lightning restarts a run in the middle of an epoch exactly: the batch counts say that batch
        is processed but not yet completed, and the count of batches that rows are logged at does not hold it
        yet. Saved as they stood, a batch begun but not finished would count in the validation schedule (every
        later validation one step early) and every row logged after ``--resume`` would carry the next step's
        number."""
        if not self._interrupted:
            return
        loop = checkpoint.get("loops", {}).get("fit_loop", {})
        state = loop.get("epoch_loop.state_dict", {})
        if isinstance(state.get("_batches_that_stepped"), int) and isinstance(checkpoint.get("global_step"), int):
            state["_batches_that_stepped"] = checkpoint["global_step"] - 1
        progress = loop.get("epoch_loop.batch_progress", {})
        for part in ("total", "current"):
            counts = progress.get(part) if isinstance(progress, dict) else None
            if isinstance(counts, dict) and all(
                isinstance(counts.get(k), int) for k in ("ready", "started", "processed", "completed")
            ):
                done = counts["processed"]
                counts.update(ready=done, started=done, processed=done, completed=done - 1)


def step_line_every(max_steps: int) -> int:
    """Steps between :class:`StepLines`' lines in a run of ``max_steps``: about twenty lines, none closer than
    ten steps apart (a run of ten steps or fewer: one line, at its end)."""
    return max(1, min(10, max_steps), max_steps // 20)


class StepLines(L.Callback):
    """Progress for logs and pipes, where a progress bar prints nothing readable: a line on ``stream``
    (stderr) every ``every`` optimizer steps and at the last one, ``step 60/240  loss 0.1234  val uSDR
    3.21 dB  14 s`` (the last validation's uSDR once there is one; seconds since the run started), and one
    after each validation, ``step 64/240  val uSDR 3.35 dB  15 s``."""

    def __init__(self, every: int, total: int, stream=None):
        self.every, self.total, self.stream = max(1, every), total, stream
        self._t0 = time.monotonic()
        self._usdr = None  # kept here: Lightning may clear its callback metrics at an epoch's start

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking or "val/usdr" not in trainer.callback_metrics:
            return
        self._usdr = float(trainer.callback_metrics["val/usdr"])
        if trainer.global_rank == 0:  # its own line: a validation after the last step line is not left unsaid
            self._print(f"step {trainer.global_step}/{self.total}  val uSDR {self._usdr:.2f} dB")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        if trainer.global_rank != 0 or (step % self.every and step != self.total):
            return
        metrics = trainer.callback_metrics
        line = f"step {step}/{self.total}"
        if "train/loss" in metrics:
            line += f"  loss {float(metrics['train/loss']):.4f}"
        if self._usdr is not None:
            line += f"  val uSDR {self._usdr:.2f} dB"
        self._print(line)

    def _print(self, line: str) -> None:
        print(f"{line}  {time.monotonic() - self._t0:.0f} s", file=self.stream or sys.stderr, flush=True)


class WarmEMA(EMAWeightAveraging):
    """Lightning's ``EMAWeightAveraging`` whose average follows the trained weights until averaging starts
    (``update_starting_at_step``): validations and checkpoints during the warm-up see the weights being
    trained, not the initial ones that the average would otherwise hold until its first update."""

    _swapped = False  # the average is in the model for a validation

    def on_validation_epoch_start(self, trainer, pl_module):
        super().on_validation_epoch_start(trainer, pl_module)
        self._swapped = self._average_model is not None

    def on_validation_epoch_end(self, trainer, pl_module):
        super().on_validation_epoch_end(trainer, pl_module)
        self._swapped = False

    def on_exception(self, trainer, pl_module, exception):
        """Ctrl-C during a validation: the trained weights go back into the model (this callback is listed
        before :class:`LastCheckpoint`), else the checkpoint saved on Ctrl-C would hold the two swapped."""
        if self._swapped:
            self._swap_models(pl_module)
            self._swapped = False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        avg = self._average_model
        if avg is not None and int(avg.n_averaged) == 0:  # not averaging yet: the average is the model
            with torch.no_grad():
                for a, p in zip(avg.module.parameters(), pl_module.parameters()):
                    a.copy_(p)


def atomic_checkpoint_io():
    """Lightning's checkpoint writer, each file written beside its place and renamed onto it
    (:func:`curate.common.atomic.atomic_path`): a full disk or a kill leaves the previous checkpoint whole."""
    from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

    class AtomicCheckpointIO(TorchCheckpointIO):
        def save_checkpoint(self, checkpoint, path, storage_options=None):
            with atomic_path(path) as tmp:
                super().save_checkpoint(checkpoint, tmp, storage_options)

    return AtomicCheckpointIO()


def quiet_lightning() -> None:
    for name in (
        "lightning.pytorch.utilities.rank_zero",
        "lightning.pytorch.accelerators.cuda",
        "lightning.fabric.utilities.seed",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)


def check_trainer_args(
    *, accelerator: str = "auto", devices: int | str = "auto", strategy: str = "auto", num_nodes: int = 1
) -> None:
    """:class:`StemcurateError` naming the options when Lightning cannot run with them on this machine
    (``--accelerator gpu`` without a GPU, ``--devices 0``, an unknown ``--strategy``), before any work."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    quiet_lightning()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            L.Trainer(
                accelerator=accelerator,
                devices=devices,
                strategy=strategy,
                num_nodes=num_nodes,
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
            )
    except (MisconfigurationException, ValueError, TypeError, RuntimeError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise StemcurateError(
            f"--accelerator {accelerator} --devices {devices} --strategy {strategy}: {first}"
        ) from None


def merge_logs(earlier: pd.DataFrame, metrics_csv: Path) -> None:
    """Put the rows logged before a resume back in front of the new ones."""
    new = pd.read_csv(metrics_csv) if metrics_csv.is_file() else earlier.iloc[:0]
    first = new["step"].min() if len(new) else np.inf
    merged = pd.concat([earlier[earlier["step"] < first], new], ignore_index=True)
    with atomic_path(metrics_csv) as tmp:
        merged.to_csv(tmp, index=False)


class ManifestData(L.LightningDataModule):
    """Loaders whose training sampler starts at the trainer's global step (exact resume) on every rank."""

    def __init__(self, train_ds, valid_ds, cfg: TrainConfig):
        super().__init__()
        self.train_ds, self.valid_ds, self.cfg = train_ds, valid_ds, cfg

    def train_dataloader(self):
        t, cfg = self.trainer, self.cfg
        # the step is read when each epoch's iteration starts: a run resumed mid-epoch goes on from where it is
        sampler = StepSampler(
            lambda: t.global_step, cfg.max_steps, cfg.batch_size, rank=t.global_rank, world=t.world_size
        )
        return DataLoader(
            self.train_ds,
            batch_size=cfg.batch_size,
            sampler=sampler,
            num_workers=cfg.num_workers,
            persistent_workers=cfg.num_workers > 0,
        )

    def val_dataloader(self):
        if self.valid_ds is None or len(self.valid_ds) == 0:
            return []
        return DataLoader(self.valid_ds, batch_size=self.cfg.batch_size, num_workers=self.cfg.num_workers)
