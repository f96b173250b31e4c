"""Separation metrics: uSDR (the SDX challenges' global SDR) and cSDR (SiSEC 2018 / museval).

cSDR follows ``museval.evaluate`` (BSSEval v4, ``bss_eval_images`` with time-invariant filters,
1 s windows without overlap). In that decomposition the four error terms add up to
``estimate - reference`` (``e_spat + e_interf + e_artif = ŝ - s``), so the per-window SDR is
``10·log10(Σ s² / Σ (ŝ - s)²)`` over the window's samples and channels: the 512-tap projection
filters that museval solves for change ISR/SIR/SAR but not SDR. :func:`csdr_windows` computes
that directly, with museval's conventions: estimates padded or cut to the reference length,
``floor((n - win + hop) / hop)`` windows (one when the signal is shorter than a window), a window
where any reference or any estimate is silent (all channel sums zero) is NaN for every source,
``+inf`` when the error is exactly zero. Per track, cSDR is the median over the non-NaN windows;
over tracks, the median of the track values.
"""

from __future__ import annotations

import numpy as np
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


def _windows(n: int, win: int, hop: int) -> list[tuple[int, int]]:
    nwin = int(np.floor((n - win + hop) / hop)) if win < n else 1
    return [(int(t * hop), int(min(t * hop + win, n))) for t in range(nwin)]


def _channel_sum(x: np.ndarray) -> np.ndarray:
    """``(sources, samples, channels)`` -> per-sample channel sums (faster than ``sum(axis=2)`` for few channels)."""
    total = x[:, :, 0].copy()
    for c in range(1, x.shape[2]):
        total += x[:, :, c]
    return total


def csdr_windows(references: np.ndarray, estimates: np.ndarray, *, win: int = 44100, hop: int = 44100) -> np.ndarray:
    """Per-window SDR in dB as ``museval.evaluate`` returns it.

    ``references``, ``estimates``: ``(sources, samples, channels)`` (museval's layout; all the
    sources evaluated together, since a silent window of one makes every source NaN there).
    Returns ``(sources, windows)`` float64 with NaN for silent windows.
    """
    ref = np.asarray(references, dtype=np.float64)
    est = np.asarray(estimates, dtype=np.float64)
    if ref.ndim == 2:
        ref, est = ref[..., None], est[..., None] if est.ndim == 2 else est
    if ref.shape[0] != est.shape[0] or ref.shape[2] != est.shape[2]:
        raise ValueError(f"references {ref.shape} and estimates {est.shape} differ in sources or channels")
    n = ref.shape[1]
    if est.shape[1] >= n:
        est = est[:, :n]
    else:
        est = np.pad(est, [(0, 0), (0, n - est.shape[1]), (0, 0)])
    bounds = _windows(n, win, hop)
    out = np.full((ref.shape[0], len(bounds)), np.nan)
    # per-sample quantities summed over channels once; windows then sum 1-D runs
    diff = est - ref
    energy = np.einsum("sic,sic->si", ref, ref)
    error = np.einsum("sic,sic->si", diff, diff)
    ref_zero = _channel_sum(ref) == 0
    est_zero = _channel_sum(est) == 0
    with np.errstate(divide="ignore"):
        for t, (a, b) in enumerate(bounds):
            if ref_zero[:, a:b].all(axis=1).any() or est_zero[:, a:b].all(axis=1).any():
                continue
            num = energy[:, a:b].sum(axis=1)
            den = error[:, a:b].sum(axis=1)
            out[:, t] = np.where(den == 0, np.inf, 10 * np.log10(num / np.where(den == 0, 1.0, den)))
    return out


def csdr(references: np.ndarray, estimates: np.ndarray, *, win: int = 44100, hop: int = 44100) -> np.ndarray:
    """cSDR per source of one track: median over non-NaN windows of :func:`csdr_windows` (NaN if none)."""
    w = csdr_windows(references, estimates, win=win, hop=hop)
    out = np.full(w.shape[0], np.nan)
    for j, row in enumerate(w):
        ok = row[~np.isnan(row)]
        if ok.size:
            out[j] = np.median(ok)
    return out
