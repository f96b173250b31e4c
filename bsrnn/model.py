"""The Band-Split RNN (Luo & Yu 2022, arXiv 2209.15174) for one target.

``(batch, channels, samples)`` -> STFT (Hann, ``n_fft`` 2048, hop 512; 1024 in the ``tiny`` preset) -> band split
(real/imag x channels of each band's bins as features, per-band normalisation and linear to ``fc_dim``) ->
``num_layers`` residual blocks (a BLSTM over time, then a BLSTM over bands; each: layer norm ->
BLSTM -> linear, plus the input) -> mask estimation (per band: norm -> MLP with Tanh -> linear -> GLU)
-> complex mask on the spectrogram -> iSTFT. All normalisations act per frame, so any input length
works. The model saves and rebuilds itself from its hyperparameters (:class:`BSRNNConfig`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from bsrnn.bands import BUILTIN_SPECS, band_edges
from bsrnn.errors import CheckpointError
from bsrnn.layers import BandSplit, MaskEstimation

__all__ = ["BSRNN", "BSRNNConfig", "CheckpointError", "SIZES"]  # CheckpointError: its import path before bsrnn.errors

SIZES = {
    "paper": dict(fc_dim=128, rnn_dim=256, num_layers=12, mlp_dim=512, hop=512),
    "medium": dict(fc_dim=96, rnn_dim=128, num_layers=6, mlp_dim=256, hop=512),
    "small": dict(fc_dim=64, rnn_dim=64, num_layers=4, mlp_dim=128, hop=512),
    "tiny": dict(fc_dim=32, rnn_dim=32, num_layers=2, mlp_dim=64, hop=1024),
}
"""Model presets. ``tiny``, the size for short CPU runs, hops 1024 samples (half the paper's frames: about twice
the examples per second, and more learned in 10 minutes of a 2-core CPU on real songs; docs/training.md)."""


@dataclass
class BSRNNConfig:
    """Hyperparameters that rebuild a model; ``bands`` defaults to the target's built-in spec."""

    target: str = "vocals"
    sample_rate: int = 44100
    channels: int = 2
    n_fft: int = 2048
    hop: int = 512
    bands: list = field(default_factory=list)
    fc_dim: int = 128
    rnn_dim: int = 256
    num_layers: int = 12
    mlp_dim: int = 512

    def __post_init__(self):
        problems = [
            f"{name} must be an integer >= 1 (got {getattr(self, name)!r})"
            for name in ("sample_rate", "n_fft", "hop", "fc_dim", "rnn_dim", "num_layers", "mlp_dim")
            if isinstance(getattr(self, name), bool)
            or not isinstance(getattr(self, name), int)
            or getattr(self, name) < 1
        ]
        if self.channels not in (1, 2):
            problems.append(f"channels must be 1 or 2 (got {self.channels!r})")
        if not problems and not 16 <= self.n_fft:
            problems.append(f"n_fft must be >= 16 (got {self.n_fft})")
        if not problems and not self.hop <= self.n_fft:
            problems.append(f"hop must be at most n_fft ({self.n_fft}), got {self.hop}")
        if problems:
            raise ValueError("; ".join(problems))
        if not self.bands:
            if self.target not in BUILTIN_SPECS:
                raise ValueError(
                    f"no built-in band spec for target '{self.target}'; pass bands=[[end_hz, step_hz], ...]"
                )
            self.bands = [list(p) for p in BUILTIN_SPECS[self.target]]
        band_edges(self.bands, self.sample_rate, self.n_fft)  # validates

    @classmethod
    def preset(cls, size: str, target: str = "vocals", **overrides) -> "BSRNNConfig":
        """A preset of :data:`SIZES`: ``paper`` (fc 128, rnn 256, 12 layers, mlp 512, hop 512), ``medium``,
        ``small`` or ``tiny`` (fc 32, rnn 32, 2 layers, mlp 64, hop 1024: CPU demos and tests)."""
        if size not in SIZES:
            raise ValueError(f"unknown model size '{size}' (use {', '.join(SIZES)})")
        return cls(target=target, **{**SIZES[size], **overrides})


class _Residual(nn.Module):
    """Layer norm -> BLSTM -> linear, plus the input, over the second-to-last axis of ``(N, L, D)``."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.rnn = nn.LSTM(dim, hidden, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.rnn(self.norm(x))  # (N, L, 2H): with batch_first, a transposed view of the LSTM's (L, N, 2H)
        yt = y.transpose(0, 1)
        if yt.is_contiguous():  # project in the LSTM's own layout: one matmul, no copy (under bf16
            return x + self.fc(yt).transpose(0, 1)  # autocast, the view made matmul copy the weight per row)
        return x + self.fc(y)


class BSRNN(nn.Module):
    """One-target Band-Split RNN: ``forward((batch, channels, samples)) -> (batch, channels, samples)``."""

    def __init__(self, config: BSRNNConfig):
        super().__init__()
        self.config = config
        bands = band_edges(config.bands, config.sample_rate, config.n_fft)
        per_bin = config.channels * 2
        self.band_split = BandSplit(bands, per_bin, config.fc_dim)
        self.time_rnns = nn.ModuleList([_Residual(config.fc_dim, config.rnn_dim) for _ in range(config.num_layers)])
        self.band_rnns = nn.ModuleList([_Residual(config.fc_dim, config.rnn_dim) for _ in range(config.num_layers)])
        self.mask = MaskEstimation(bands, per_bin, config.fc_dim, config.mlp_dim)
        self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)

    @property
    def n_bands(self) -> int:
        return self.band_split.layout.n_bands

    def stft(self, audio: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, samples)`` -> complex ``(batch, channels, freqs, frames)`` (the model's STFT)."""
        b, c, n = audio.shape
        cfg = self.config
        spec = torch.stft(audio.reshape(b * c, n), cfg.n_fft, cfg.hop, window=self.window, return_complex=True)
        return spec.reshape(b, c, *spec.shape[-2:])

    def istft(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        """Inverse of :meth:`stft`: complex ``(batch, channels, freqs, frames)`` -> ``(batch, channels, length)``."""
        b, c, f, t = spec.shape
        cfg = self.config
        out = torch.istft(spec.reshape(b * c, f, t), cfg.n_fft, cfg.hop, window=self.window, length=length)
        return out.reshape(b, c, length)

    def separate_spec(self, audio: torch.Tensor) -> torch.Tensor:
        """The masked mixture spectrogram: ``(batch, channels, samples)`` -> complex ``(batch, channels, freqs,
        frames)``."""
        b, c, n = audio.shape
        if c != self.config.channels:
            raise ValueError(f"model expects {self.config.channels} channels, got {c}")
        spec = self.stft(audio)
        f, t = spec.shape[-2:]
        feats = torch.view_as_real(spec).permute(0, 3, 2, 1, 4).reshape(b, t, f * c * 2)  # (B, T, F*C*2)
        z = self.band_split(feats)  # (B, T, K, D)
        k, d = z.shape[2], z.shape[3]
        for time_rnn, band_rnn in zip(self.time_rnns, self.band_rnns):
            z = time_rnn(z.permute(0, 2, 1, 3).reshape(b * k, t, d)).reshape(b, k, t, d).permute(0, 2, 1, 3)
            z = band_rnn(z.reshape(b * t, k, d)).reshape(b, t, k, d)
        mask = self.mask(z).reshape(b, t, f, c, 2).permute(0, 3, 2, 1, 4)  # (B, C, F, T, 2)
        return spec * torch.view_as_complex(mask.contiguous())

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.istft(self.separate_spec(audio), audio.shape[-1])

    def save(self, path: str | Path) -> Path:
        """Write weights and hyperparameters (:func:`bsrnn.checkpoint.save_model`)."""
        from bsrnn.checkpoint import save_model

        return save_model(self, path)

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device = "cpu") -> "BSRNN":
        """Rebuild a model from a model file of either layout (:func:`bsrnn.checkpoint.load_model`;
        :class:`~bsrnn.errors.CheckpointError` for anything else)."""
        from bsrnn.checkpoint import load_model

        return load_model(path, map_location=map_location)
