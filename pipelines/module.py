"""The Lightning module that trains one BSRNN target with the seed's loss, a warm-up and decay of the
learning rate (:func:`lr_multiplier`), and the noise-robust weighting and truncation of
:mod:`pipelines.robust`."""

from __future__ import annotations

import math

import lightning as L
import torch

from bsrnn.model import BSRNN, BSRNNConfig
from curate.common.errors import StemcurateError
from pipelines.config import TrainConfig
from pipelines.metrics import usdr
from pipelines.robust import LossTruncation, combine, example_weights, relative_losses


def lr_multiplier(step: int, cfg: TrainConfig) -> float:
    """The learning rate at global ``step`` as a fraction of ``cfg.lr``.

    ``cosine`` (default): ``(step + 1) / warmup_steps`` during the warm-up, then a half cosine from 1 at
    ``warmup_steps`` to ``min_lr_ratio`` at ``max_steps`` (held there beyond it); ``constant``: the same
    warm-up, then 1; ``seed``: ``alpha^(warmup_epochs - e)`` while ``e < warmup_epochs``, then
    ``gamma^(e - warmup_epochs)``, where ``e = step // epoch_steps``.
    """
    if cfg.schedule == "seed":
        e = step // cfg.epoch_steps
        if e < cfg.warmup_epochs:
            return cfg.warmup_alpha ** (cfg.warmup_epochs - e)
        return cfg.decay_gamma ** (e - cfg.warmup_epochs)
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_end(cfg: TrainConfig) -> int:
    """The first step at the full learning rate."""
    return cfg.warmup_epochs * cfg.epoch_steps if cfg.schedule == "seed" else cfg.warmup_steps


def ema_decay(cfg: TrainConfig) -> float:
    """The EMA decay a run uses: ``cfg.ema_decay``, lowered where needed so that the averaging horizon
    (``1 / (1 - decay)`` steps) is at most a quarter of the steps averaged (from the warm-up's end to
    ``max_steps``): a short run averages over its own recent steps, not mostly over where it started.
    0: no averaging."""
    if cfg.ema_decay <= 0:
        return 0.0
    span = cfg.max_steps - warmup_end(cfg)
    return max(0.0, min(cfg.ema_decay, 1.0 - 4.0 / span)) if span > 0 else 0.0


class SeparationModule(L.LightningModule):
    """BSRNN + loss (L1 on real and imaginary spectrogram parts + L1 on the waveform, per example),
    Adam with a linear warm-up and a cosine decay (or the seed's schedule), weighting and loss truncation,
    validation uSDR."""

    def __init__(self, model: dict, train: dict):
        super().__init__()
        self.save_hyperparameters()
        self.model_config = BSRNNConfig(**model)
        self.cfg = TrainConfig(**train)
        self.model = BSRNN(self.model_config)
        c = self.cfg
        self.truncation = (
            LossTruncation(
                c.truncate_quantile,
                mode=c.truncate_mode,
                warmup=c.truncate_warmup,
                history=c.truncate_history,
                band_db=c.truncate_level_band_db,
            )
            if c.truncate
            else None
        )
        self.drop_counts = {"corrupted": [0, 0], "clean": [0, 0]}  # [dropped, seen]

    def _l1(self, spec: torch.Tensor, wave: torch.Tensor) -> torch.Tensor:
        """The loss of an error ``spec`` (complex spectrogram) and ``wave`` ``(batch, channels, samples)``, per
        example."""
        dims = tuple(range(1, spec.ndim))
        return spec.real.abs().mean(dims) + spec.imag.abs().mean(dims) + wave.abs().mean(dim=(1, 2))

    def _losses(self, mixture: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`example_losses` plus the target's spectrogram, which truncation reuses."""
        est_spec = self.model.separate_spec(mixture)
        est = self.model.istft(est_spec, mixture.shape[-1])
        target_spec = self.model.stft(target)
        return self._l1(est_spec - target_spec, est - target), est, target_spec

    def example_losses(self, mixture: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(batch, channels, samples)`` mixture and target -> per-example loss ``(batch,)`` and the estimate."""
        losses, est, _ = self._losses(mixture, target)
        return losses, est

    def truncation_scores(
        self,
        losses: torch.Tensor,
        mixture: torch.Tensor,
        target: torch.Tensor,
        *,
        target_spec: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """What loss truncation ranks, ``(batch,)``: ``losses`` as they are (``truncate_on="absolute"``) or
        relative to the losses of silent estimates of the target and the mixture
        (:func:`pipelines.robust.relative_losses`); and each example's target-to-mixture level in dB
        (the ratio of those silent-estimate losses), which truncation compares like with like by.
        ``target_spec``: the target's spectrogram when the caller has it already."""
        with torch.no_grad():
            spec = self.model.stft(target) if target_spec is None else target_spec.detach()
            t, m = self._l1(spec, target), self._l1(self.model.stft(mixture), mixture)  # losses of silent estimates
            level = 20 * torch.log10((t + 1e-4 * m).clamp_min(1e-12) / m.clamp_min(1e-12))
            if self.cfg.truncate_on == "absolute":
                return losses, level
            return relative_losses(losses.detach(), t, m), level

    def on_before_optimizer_step(self, optimizer) -> None:
        """Stop on a non-finite gradient (clipping would turn it into NaN weights)."""
        for name, p in self.named_parameters():
            if p.grad is not None and not torch.isfinite(p.grad).all():
                raise StemcurateError(
                    f"step {self.global_step}: the gradient of {name} is NaN/inf; stopped before it reaches the weights"
                )

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        c = self.cfg
        losses, _, target_spec = self._losses(batch["mixture"], batch["target"])
        weights = example_weights(
            batch["quality"], c.weighting, threshold=c.binary_threshold, noisy_weight=c.noisy_weight
        )
        if self.truncation is not None:
            scores, levels = self.truncation_scores(losses, batch["mixture"], batch["target"], target_spec=target_spec)
            keep = self.truncation.keep(scores, self.global_step, levels)
        else:
            keep = torch.ones_like(losses, dtype=torch.bool)
        loss = combine(losses, weights.to(losses.device), keep)
        if not torch.isfinite(loss):
            raise StemcurateError(
                f"step {self.global_step}: the training loss is {loss.item()} (NaN/inf); stopped before it reaches the "
                "weights. Check the audio levels of the manifest's files (curate scan flags impossible levels)"
            )
        n = len(losses)
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=n)
        self.log("train/loss_unweighted", losses.detach().mean(), batch_size=n)
        self.log("train/dropped", 1.0 - keep.float().mean(), batch_size=n)
        self.log(
            "train/lr", self.optimizers().param_groups[0]["lr"] if self._trainer is not None else c.lr, batch_size=n
        )
        flags = batch["corrupted"].to(keep.device)
        if (flags >= 0).any():
            for name, value in (("corrupted", 1), ("clean", 0)):
                sel = flags == value
                self.drop_counts[name][0] += int((~keep & sel).sum())
                self.drop_counts[name][1] += int(sel.sum())
                d, s = self.drop_counts[name]
                if s:
                    self.log(f"train/dropped_{name}", d / s, batch_size=n)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        losses, est = self.example_losses(batch["mixture"], batch["target"])
        n = len(losses)
        self.log("val/loss", losses.mean(), batch_size=n, sync_dist=True)
        self.log("val/usdr", usdr(batch["target"], est).mean(), prog_bar=True, batch_size=n, sync_dist=True)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.cfg.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_multiplier(step, self.cfg))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["robustness"] = {
            "truncation": self.truncation.state_dict() if self.truncation is not None else None,
            "drop_counts": {k: list(v) for k, v in self.drop_counts.items()},
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("robustness") or {}
        if self.truncation is not None and state.get("truncation"):
            self.truncation.load_state_dict(state["truncation"])
        for k, v in (state.get("drop_counts") or {}).items():
            self.drop_counts[k] = [int(x) for x in v]
