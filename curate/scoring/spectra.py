"""Short-time spectra of whole stems and sums over the frames of each fragment.

Everything per fragment is computed once per stem and reduced per fragment with cumulative
sums, so scoring costs about one STFT per stem, however many (overlapping) fragments it has.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

N_FFT_44K = 2048
HOP_44K = 512


@dataclass
class StemSpectrum:
    """STFT of one stem: ``spec`` complex64 ``(channels, bins, frames)``; ``hop`` and ``n_fft`` in samples."""

    spec: np.ndarray
    sample_rate: int
    n_fft: int
    hop: int

    @property
    def freqs(self) -> np.ndarray:
        """Centre frequency of each bin, Hz."""
        return np.fft.rfftfreq(self.n_fft, 1.0 / self.sample_rate)

    @property
    def frames(self) -> int:
        return self.spec.shape[-1]

    def power(self) -> np.ndarray:
        """Power summed over channels, float32 ``(bins, frames)``."""
        return np.sum(self.spec.real**2 + self.spec.imag**2, axis=0)


def fft_size(sample_rate: int) -> tuple[int, int]:
    """``(n_fft, hop)`` giving about 46 ms / 12 ms frames at any rate (2048 / 512 at 44.1 kHz)."""
    n_fft = int(2 ** round(np.log2(N_FFT_44K * sample_rate / 44100)))
    return n_fft, n_fft // 4


def stft(audio: np.ndarray, sample_rate: int) -> StemSpectrum:
    """Hann-window STFT of ``audio`` ``(channels, samples)``; frame ``t`` is centred on sample ``t * hop``."""
    n_fft, hop = fft_size(sample_rate)
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    if x.shape[-1] < n_fft // 2 + 1:
        x = torch.nn.functional.pad(x, (0, n_fft // 2 + 1 - x.shape[-1]))
    spec = torch.stft(x, n_fft, hop, window=torch.hann_window(n_fft), center=True, return_complex=True)
    return StemSpectrum(spec.numpy(), sample_rate, n_fft, hop)


def frame_bounds(bounds: np.ndarray, hop: int, n_frames: int) -> np.ndarray:
    """Sample bounds ``(n, 2)`` -> frame bounds ``(n, 2)``: frames whose centre lies in ``[start, end)``."""
    b = np.asarray(bounds, dtype=np.int64).reshape(-1, 2)
    first = -(-b[:, 0] // hop)
    last = -(-b[:, 1] // hop)
    return np.clip(np.stack([first, last], axis=1), 0, n_frames)


def segment_sums(values: np.ndarray, fbounds: np.ndarray) -> np.ndarray:
    """Sums of ``values`` ``(..., frames)`` over each frame range ``[a, b)`` of ``fbounds`` -> ``(..., n)``.

    Ranges may overlap; the frames are reduced once into the cells between all range bounds.
    """
    n = len(fbounds)
    out_dtype = np.result_type(values, np.float64)
    if n == 0:
        return np.zeros(values.shape[:-1] + (0,), dtype=out_dtype)
    edges = np.unique(np.clip(fbounds, 0, values.shape[-1]))
    cells = np.zeros(values.shape[:-1] + (len(edges),), dtype=out_dtype)
    nonempty = edges[:-1] < edges[1:]
    if nonempty.any():
        sums = np.add.reduceat(values, edges[:-1][nonempty], axis=-1)
        # reduceat's last cell runs to the end of the array: cut it at the last edge
        last = edges[:-1][nonempty][-1]
        sums[..., -1] = values[..., last : edges[-1]].sum(axis=-1)
        cells[..., 1:][..., nonempty] = sums
    csum = np.cumsum(cells, axis=-1)
    pos = np.searchsorted(edges, np.clip(fbounds, 0, values.shape[-1]))
    return csum[..., pos[:, 1]] - csum[..., pos[:, 0]]


def mel_filterbank(
    n_mels: int, n_fft: int, sample_rate: int, fmin: float = 30.0, fmax: float | None = None
) -> np.ndarray:
    """Triangular mel filters ``(n_mels, n_fft // 2 + 1)`` (HTK mel scale, unit peak)."""
    fmax = fmax or sample_rate / 2
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    hz = lambda m: 700.0 * (10 ** (m / 2595.0) - 1.0)  # noqa: E731
    edges = hz(np.linspace(mel(fmin), mel(fmax), n_mels + 2))
    f = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    lo, ce, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (f[None] - lo) / np.maximum(ce - lo, 1e-9)
    down = (hi - f[None]) / np.maximum(hi - ce, 1e-9)
    fb = np.clip(np.minimum(up, down), 0.0, None)
    # very low bands can fall between bins: give each at least its nearest bin
    empty = fb.sum(axis=1) == 0
    fb[empty, np.abs(f[None] - ce[empty]).argmin(axis=1)] = 1.0
    return fb.astype(np.float32)
