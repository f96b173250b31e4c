"""Vectorised reference source-activity detection.

A stem is cut into windows of ``window_s`` seconds every ``hop_s`` seconds (no padding: a
tail shorter than a window is not considered). Each window is split into ``n_chunks`` equal
sub-chunks; per sub-chunk and channel the RMS is taken (exact zeros become ``eps``). The
window's threshold per channel is ``max(quantile-th quantile of its sub-chunk RMS, gamma)``
and the window is kept when more than ``min_active`` of its sub-chunks exceed the threshold
in every channel. With ``window = n_chunks * chunk`` not an integer number of samples, the
sub-chunk length is ``window // n_chunks`` and the last ``window % n_chunks`` samples of a
window are not analysed (the fragment still spans the whole window).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

MIN_CHUNK_S = 0.01
"""Shortest SAD sub-chunk and hop, seconds: an RMS over less is not a level."""


@dataclass(frozen=True)
class SADConfig:
    """Parameters of the detector (defaults: the BSRNN paper's)."""

    window_s: float = 6.0
    hop_s: float = 3.0
    n_chunks: int = 10
    eps: float = 1e-5
    gamma: float = 1e-3
    quantile: float = 0.15
    min_active: float = 0.5

    def __post_init__(self):
        bad = [f.name for f in fields(self) if not math.isfinite(getattr(self, f.name))]
        if bad:
            raise ValueError(f"SAD {', '.join(bad)} must be finite numbers")
        if not self.window_s > 0 or not self.hop_s > 0:
            raise ValueError(f"SAD window_s and hop_s must be > 0, got {self.window_s}, {self.hop_s}")
        if self.n_chunks < 1:
            raise ValueError(f"SAD n_chunks must be >= 1, got {self.n_chunks}")
        if self.window_s / self.n_chunks < MIN_CHUNK_S or self.hop_s < MIN_CHUNK_S:
            raise ValueError(
                f"SAD window_s / n_chunks ({self.window_s / self.n_chunks:.3g} s) and hop_s ({self.hop_s} s) "
                f"must be at least {MIN_CHUNK_S} s (fewer chunks or a longer window)"
            )
        if not 0.0 <= self.quantile <= 1.0 or not 0.0 <= self.min_active < 1.0:
            raise ValueError("SAD quantile must be in [0, 1] and min_active in [0, 1)")
        if self.eps <= 0 or self.gamma < 0:
            raise ValueError("SAD eps must be > 0 and gamma >= 0")

    def sizes(self, sample_rate: int) -> tuple[int, int, int]:
        """``(window, hop, chunk)`` in samples at ``sample_rate`` Hz."""
        window = int(round(self.window_s * sample_rate))
        hop = int(round(self.hop_s * sample_rate))
        chunk = window // self.n_chunks
        if chunk < 1 or hop < 1:
            raise ValueError(f"SAD window {self.window_s} s is too short at {sample_rate} Hz")
        return window, hop, chunk

    def to_dict(self) -> dict:
        return asdict(self)


def _chunk_rms(audio: np.ndarray, window: int, hop: int, chunk: int, n_chunks: int, n_windows: int) -> np.ndarray:
    """RMS per ``(channel, window, sub-chunk)``."""
    channels = audio.shape[0]
    if hop % chunk == 0:
        # sub-chunks lie on one global grid: one reshape, then windows are strided views of it
        step = hop // chunk
        n_cells = (n_windows - 1) * step + n_chunks
        grid = audio[:, : n_cells * chunk].reshape(channels, n_cells, chunk)
        ms = np.mean(np.square(grid, dtype=np.float32), axis=-1, dtype=np.float32)
        idx = (np.arange(n_windows)[:, None] * step) + np.arange(n_chunks)[None, :]
        return np.sqrt(ms[:, idx])
    # general case: sums of squares from a cumulative sum (float64)
    csum = np.zeros((channels, audio.shape[1] + 1), dtype=np.float64)
    np.cumsum(np.square(audio, dtype=np.float64), axis=1, out=csum[:, 1:])
    starts = np.arange(n_windows)[:, None] * hop + np.arange(n_chunks)[None, :] * chunk
    sums = csum[:, starts + chunk] - csum[:, starts]
    return np.sqrt(np.maximum(sums, 0.0) / chunk).astype(np.float32)


def window_activity(
    audio: np.ndarray, sample_rate: int, config: SADConfig = SADConfig()
) -> tuple[np.ndarray, np.ndarray]:
    """Activity of every analysis window of one stem.

    Args:
        audio: ``(channels, samples)`` or ``(samples,)``, float.
        sample_rate: Hz.
    Returns:
        ``(starts, active)``: window start in samples (int64, ``(n_windows,)``) and a bool mask.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    window, hop, chunk = config.sizes(sample_rate)
    n_samples = audio.shape[1]
    if n_samples < window:
        return np.zeros(0, np.int64), np.zeros(0, bool)
    n_windows = (n_samples - window) // hop + 1
    rms = _chunk_rms(audio, window, hop, chunk, config.n_chunks, n_windows)  # (C, W, K)
    rms = np.where(rms == 0.0, np.float32(config.eps), rms)
    thr = np.quantile(rms, config.quantile, axis=-1, keepdims=True)
    thr = np.maximum(thr, config.gamma)
    frac = np.mean(rms > thr, axis=-1)  # (C, W)
    active = np.all(frac > config.min_active, axis=0)
    starts = np.arange(n_windows, dtype=np.int64) * hop
    return starts, active


def detect(audio: np.ndarray, sample_rate: int, config: SADConfig = SADConfig()) -> np.ndarray:
    """Salient fragments of one stem as ``(n, 2)`` int64 ``[start, end)`` sample bounds."""
    window, _, _ = config.sizes(sample_rate)
    starts, active = window_activity(audio, sample_rate, config)
    s = starts[active]
    return np.stack([s, s + window], axis=1) if len(s) else np.zeros((0, 2), np.int64)
