"""A mask-based separator's estimate of a stem: what ``curate corrupt``'s ``separated`` kind writes."""

from __future__ import annotations

import numpy as np
from scipy import signal


def separated_estimate(
    stem: np.ndarray,
    rest: np.ndarray,
    *,
    power: float,
    smooth_bins: int,
    smooth_frames: int,
    floor: float,
    n_fft: int = 2048,
    hop: int = 512,
) -> tuple[np.ndarray, np.ndarray]:
    """A mask-based separator's estimate of ``stem`` from the mixture ``stem + rest`` (both ``(channels,
    samples)``, same shape): the ratio mask ``|S|^power / (|S|^power + |R|^power)`` of the two STFTs, averaged
    over ``smooth_bins`` x ``smooth_frames`` cells, raised to at least ``floor``, applied to the mixture's STFT
    and inverted. Returns the estimate and the part of it that comes from ``rest`` (the mask applied to
    ``rest`` alone), both ``(channels, samples)`` float64."""
    from scipy.ndimage import uniform_filter

    n = stem.shape[1]
    est, remains = np.empty(stem.shape), np.empty(stem.shape)
    kw = dict(nperseg=n_fft, noverlap=n_fft - hop)

    def inverse(spec):
        _, y = signal.istft(spec, **kw)
        return np.pad(y[:n], (0, max(0, n - len(y))))

    for c in range(stem.shape[0]):
        _, _, s_spec = signal.stft(stem[c], **kw)
        _, _, r_spec = signal.stft(rest[c], **kw)
        a, b = np.abs(s_spec) ** power, np.abs(r_spec) ** power
        mask = a / np.maximum(a + b, 1e-30)
        mask = np.maximum(uniform_filter(mask, size=(smooth_bins, smooth_frames), mode="nearest"), floor)
        est[c], remains[c] = inverse(mask * (s_spec + r_spec)), inverse(mask * r_spec)
    return est, remains


def separated_stem(rng: np.random.Generator, target: np.ndarray, rest: np.ndarray) -> tuple[np.ndarray, float, str]:
    """A separator-like estimate of the stem ``target`` from the mixture ``target + rest`` (both ``(channels,
    samples)``), with random mask settings (see :mod:`curate.simulate.corrupt`): ``(audio, level of the
    siblings' remains in dB re the stem, description of the mask)``."""
    power, bins, frames = float(rng.uniform(0.5, 2.0)), int(rng.integers(1, 16)), int(rng.integers(1, 10))
    floor = float(rng.uniform(0.0, 0.1))
    est, remains = separated_estimate(target, rest, power=power, smooth_bins=bins, smooth_frames=frames, floor=floor)
    level = 20 * np.log10(max(_rms(remains), 1e-12) / max(_rms(target), 1e-12))
    return est, float(level), f"mask power {power:.2f}, smoothed {bins} bins x {frames} frames, floor {floor:.2f}"


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
