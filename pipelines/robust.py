"""Noise robustness of the trainer: per-example loss weights and loss truncation.

* :func:`example_weights` turns each example's ``quality`` (the lowest ``quality`` of the
  fragments it is made of) into a loss weight: ``none`` (all 1), ``quality`` (the score itself) or
  ``binary`` (1 when ``quality >= threshold``, else ``noisy_weight``); weights are normalised to
  mean 1 over the batch.
* :class:`LossTruncation` drops the examples whose loss exceeds the ``1 - c`` quantile, either of
  a running history of recent per-example losses (Kang & Hashimoto 2020, "loss dropper") or of the
  batch (as the SDX23 label-noise winner did), after a warm-up.
  Examples are ranked by their loss relative to the loss of a silent estimate
  (:func:`relative_losses`, ``truncate_on="relative"``, the default): the L1 loss grows with an
  example's level, and with per-stem gain augmentation the loudest clean targets would otherwise be
  the ones dropped, which teaches the model to under-estimate (measured: a truncated vocals model
  fell to about a silent estimate). An example whose target is not what the model hears in the
  mixture scores above 1 at any level; ``absolute`` ranks the raw losses.
* :func:`combine` is the batch loss: ``Σ wᵢ kᵢ lᵢ / Σ wᵢ kᵢ`` with ``kᵢ`` 1 for kept examples.
"""

from __future__ import annotations

from collections import deque

import torch


def example_weights(
    quality: torch.Tensor, mode: str, *, threshold: float = 0.7, noisy_weight: float = 0.1
) -> torch.Tensor:
    """``(batch,)`` quality in 0-1 -> ``(batch,)`` weights with mean 1 (all ones when they would sum to 0)."""
    q = quality.detach().float()
    if mode == "none":
        w = torch.ones_like(q)
    elif mode == "quality":
        w = q.clamp(0.0, 1.0)
    elif mode == "binary":
        w = torch.where(q >= threshold, torch.ones_like(q), torch.full_like(q, noisy_weight))
    else:
        raise ValueError(f"unknown weighting '{mode}'")
    total = w.sum()
    if total <= 0:
        return torch.ones_like(q)
    return w * (len(w) / total)


RELATIVE_FLOOR = 0.1
"""Share of the mixture's silent-estimate loss added to the target's, so that crops with a silent
target (their loss is the model's leakage) are ranked against the mixture instead of against 0."""


def relative_losses(
    losses: torch.Tensor, target_scale: torch.Tensor, mixture_scale: torch.Tensor, *, floor: float = RELATIVE_FLOOR
) -> torch.Tensor:
    """``(batch,)`` losses over ``target_scale + floor * mixture_scale``, where a scale is the loss of a
    silent estimate of that signal: unchanged when an example's mixture and target are scaled together."""
    return losses / (target_scale + floor * mixture_scale).clamp_min(1e-12)


def combine(losses: torch.Tensor, weights: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Batch loss ``Σ wᵢ kᵢ lᵢ / Σ wᵢ kᵢ`` from ``(batch,)`` losses, weights and a boolean keep mask."""
    wk = weights.to(losses.dtype) * keep.to(losses.dtype)
    return (wk * losses).sum() / wk.sum().clamp_min(1e-12)


class LossTruncation:
    """Drop the examples whose loss exceeds the ``1 - quantile`` quantile (``mode`` history or batch).

    With ``levels`` (history mode), each example is compared only with the history entries whose
    level is within ``band_db`` of its own (at least the ``min_pool`` nearest): the loss of a quiet
    target is compared with that of other quiet targets, so truncation drops the worst examples of
    every level instead of all examples of one level, which would bias the model's output level.
    """

    def __init__(
        self,
        quantile: float = 0.3,
        *,
        mode: str = "history",
        warmup: int = 0,
        history: int = 1000,
        band_db: float = 0.0,
        min_pool: int = 32,
    ):
        if mode not in ("history", "batch"):
            raise ValueError(f"unknown truncation mode '{mode}'")
        self.quantile, self.mode, self.warmup = quantile, mode, warmup
        self.band_db, self.min_pool = band_db, min_pool
        self.history: deque[float] = deque(maxlen=history)
        self.levels: deque[float] = deque(maxlen=history)

    def keep(self, losses: torch.Tensor, step: int, levels: torch.Tensor | None = None) -> torch.Tensor:
        """Boolean ``(batch,)`` mask of the examples to train on at global ``step``; at least one is kept.
        ``levels``: ``(batch,)`` level of each example in dB (used in history mode when ``band_db > 0``)."""
        values = losses.detach().float().cpu()
        lv = None if levels is None else levels.detach().float().cpu()
        if self.mode == "history":
            self.history.extend(values.tolist())
            self.levels.extend((lv if lv is not None else torch.full_like(values, float("nan"))).tolist())
        if step < self.warmup:
            return torch.ones(len(values), dtype=torch.bool, device=losses.device)
        cutoff = self._cutoffs(lv) if self.mode == "history" and self.band_db > 0 and lv is not None else None
        if cutoff is None:
            pool = torch.tensor(list(self.history)) if self.mode == "history" else values
            cutoff = torch.quantile(pool, 1.0 - self.quantile)
        keep = values <= cutoff
        if not keep.any():
            keep[values.argmin()] = True
        return keep.to(losses.device)

    def _cutoffs(self, levels: torch.Tensor) -> torch.Tensor | None:
        """The ``1 - quantile`` quantile of the history entries within ``band_db`` of each level; None
        when no history entry has a level."""
        hist, hl = torch.tensor(list(self.history)), torch.tensor(list(self.levels))
        known = ~torch.isnan(hl)
        hist, hl = hist[known], hl[known]
        if len(hist) == 0:
            return None
        out = torch.empty(len(levels))
        for i, level in enumerate(levels):
            dist = (hl - level).abs()
            near = dist <= self.band_db
            if int(near.sum()) < self.min_pool:
                near = dist <= dist.kthvalue(min(self.min_pool, len(dist))).values
            out[i] = torch.quantile(hist[near], 1.0 - self.quantile)
        return out

    def state_dict(self) -> dict:
        return {"history": list(self.history), "levels": list(self.levels)}

    def load_state_dict(self, state: dict) -> None:
        self.history.clear()
        self.history.extend(float(v) for v in state.get("history", []))
        self.levels.clear()
        self.levels.extend(float(v) for v in state.get("levels", [float("nan")] * len(self.history)))
