"""Band split and mask estimation for all bands at once (no Python loop over bands).

Per-frame spectral features are laid out frequency-major, ``(bins, channels, re/im)`` flattened,
so every band is one contiguous slice of ``width_k = bins_k * channels * 2`` features. Bands are
gathered into a ``(batch, time, bands, max_width)`` tensor padded with zeros, normalised over each
band's own features (a masked layer norm: statistics over the valid features of the frame only, so
any number of frames works), and mapped with one batched ``einsum`` against per-band weights
``(bands, max_width, dim)``. Mask estimation runs the same way in reverse and scatters the bands
back onto the frequency axis.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class _BandLayout(nn.Module):
    """Index buffers shared by both layers: which flattened feature each (band, slot) reads."""

    def __init__(self, bands: list[tuple[int, int]], per_bin: int):
        super().__init__()
        widths = [(e - s) * per_bin for s, e in bands]
        self.n_bands, self.max_width, self.n_features = len(bands), max(widths), bands[-1][1] * per_bin
        slot = torch.arange(self.max_width)
        start = torch.tensor([s * per_bin for s, _ in bands])
        width = torch.tensor(widths)
        mask = slot[None] < width[:, None]  # (K, W)
        index = torch.where(mask, start[:, None] + slot[None], torch.zeros_like(slot)[None])
        self.register_buffer("index", index, persistent=False)
        self.register_buffer("mask", mask, persistent=False)
        self.register_buffer("width", width, persistent=False)
        # inverse: flattened feature -> position in the (K * W) band layout
        inverse = torch.empty(self.n_features, dtype=torch.long)
        inverse[index[mask]] = torch.nonzero(mask.reshape(-1)).squeeze(1)
        self.register_buffer("inverse", inverse, persistent=False)

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., features)`` -> ``(..., bands, max_width)``, zeros in the padding."""
        return x[..., self.index] * self.mask

    def scatter(self, y: torch.Tensor) -> torch.Tensor:
        """``(..., bands, max_width)`` -> ``(..., features)``."""
        return y.reshape(*y.shape[:-2], -1)[..., self.inverse]


class BandSplit(nn.Module):
    """``(batch, time, features)`` -> ``(batch, time, bands, dim)``: per-band layer norm then linear."""

    def __init__(self, bands: list[tuple[int, int]], per_bin: int, dim: int, eps: float = 1e-5):
        super().__init__()
        self.layout = _BandLayout(bands, per_bin)
        k, w = self.layout.n_bands, self.layout.max_width
        self.eps = eps
        self.norm_weight = nn.Parameter(torch.ones(k, w))
        self.norm_bias = nn.Parameter(torch.zeros(k, w))
        self.weight = nn.Parameter(torch.empty(k, w, dim))
        self.bias = nn.Parameter(torch.empty(k, dim))
        bound = 1.0 / torch.sqrt(self.layout.width.float())  # nn.Linear's default init, per band
        with torch.no_grad():
            self.weight.uniform_(-1, 1).mul_(bound[:, None, None] * self.layout.mask[..., None])
            self.bias.uniform_(-1, 1).mul_(bound[:, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xb = self.layout.gather(x)  # (B, T, K, W)
        mask = self.layout.mask
        n = self.layout.width.to(x.dtype)[:, None]
        mean = xb.sum(-1, keepdim=True) / n
        var = (((xb - mean) * mask) ** 2).sum(-1, keepdim=True) / n
        xn = (xb - mean) / torch.sqrt(var + self.eps) * self.norm_weight + self.norm_bias
        xn = xn * mask
        return torch.einsum("btkw,kwd->btkd", xn, self.weight) + self.bias


class MaskEstimation(nn.Module):
    """``(batch, time, bands, dim)`` -> ``(batch, time, features)``: per band layer norm, MLP with
    Tanh, linear to twice the band width and a GLU."""

    def __init__(self, bands: list[tuple[int, int]], per_bin: int, dim: int, hidden: int, eps: float = 1e-5):
        super().__init__()
        self.layout = _BandLayout(bands, per_bin)
        k, w = self.layout.n_bands, self.layout.max_width
        self.eps = eps
        self.norm_weight = nn.Parameter(torch.ones(k, dim))
        self.norm_bias = nn.Parameter(torch.zeros(k, dim))
        self.w1 = nn.Parameter(torch.empty(k, dim, hidden).uniform_(-1, 1).mul_(1 / math.sqrt(dim)))
        self.b1 = nn.Parameter(torch.empty(k, hidden).uniform_(-1, 1).mul_(1 / math.sqrt(dim)))
        self.w2 = nn.Parameter(torch.empty(k, hidden, 2 * w).uniform_(-1, 1).mul_(1 / math.sqrt(hidden)))
        self.b2 = nn.Parameter(torch.empty(k, 2 * w).uniform_(-1, 1).mul_(1 / math.sqrt(hidden)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xn = nn.functional.layer_norm(x, x.shape[-1:], eps=self.eps) * self.norm_weight + self.norm_bias
        h = torch.tanh(torch.einsum("btkd,kdh->btkh", xn, self.w1) + self.b1)
        y = torch.einsum("btkh,khw->btkw", h, self.w2) + self.b2
        w = self.layout.max_width
        out = y[..., :w] * torch.sigmoid(y[..., w:])  # GLU per band
        return self.layout.scatter(out)
