"""Separation metrics. uSDR ("utterance" or global SDR of the SDX challenges) lives here; cSDR
(BSSEval v4, museval-compatible) comes with evaluation."""

from __future__ import annotations

import torch


def usdr(reference: torch.Tensor, estimate: torch.Tensor, *, eps: float = 1e-7) -> torch.Tensor:
    """uSDR in dB = 10·log10((Σs² + eps) / (Σ(s − ŝ)² + eps)) over the last two axes.

    ``reference``, ``estimate``: ``(..., channels, samples)``; returns ``(...)``. A perfect estimate
    gives a large finite value, a zero estimate of a non-silent reference about 0 dB.
    """
    ref = reference.double()
    num = ref.square().sum(dim=(-2, -1)) + eps
    den = (ref - estimate.double()).square().sum(dim=(-2, -1)) + eps
    return (10 * torch.log10(num / den)).to(reference.dtype if reference.is_floating_point() else torch.float32)
