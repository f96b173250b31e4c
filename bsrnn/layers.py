"""Band split and mask estimation without a Python loop over bands.

Per-frame spectral features are laid out frequency-major, ``(bins, channels, re/im)`` flattened,
so every band is one contiguous slice of ``width_k = bins_k * channels * 2`` features. Bands of
equal width (most of them: a spec has a handful of distinct widths) form a group; each group is
gathered into ``(batch, time, bands_in_group, width)`` and mapped with one batched ``einsum``
against its bands' weights, so the work is that of the per-band layers, without padding, in as
many kernel calls as there are distinct widths. Layer norms act per band and per frame, so any
number of frames works. Parameters are stored per group (``bands x width x dim``).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _groups(bands: list[tuple[int, int]], per_bin: int) -> list[tuple[int, list[int]]]:
    """``[(width, [band indices])]`` for the distinct feature widths, in order of first band."""
    groups: dict[int, list[int]] = {}
    for k, (s, e) in enumerate(bands):
        groups.setdefault((e - s) * per_bin, []).append(k)
    return list(groups.items())


class _Grouped(nn.Module):
    """Index buffers: for each width group, the flattened feature index of every (band, slot)."""

    def __init__(self, bands: list[tuple[int, int]], per_bin: int):
        super().__init__()
        self.n_bands = len(bands)
        self.n_features = bands[-1][1] * per_bin
        self.groups = _groups(bands, per_bin)
        order = []
        for g, (width, members) in enumerate(self.groups):
            index = torch.stack([torch.arange(bands[k][0] * per_bin, bands[k][0] * per_bin + width) for k in members])
            self.register_buffer(f"index{g}", index, persistent=False)
            order.extend(members)
        # position of band k in the concatenation of the groups
        self.register_buffer("band_order", torch.argsort(torch.tensor(order)), persistent=False)

    def index(self, g: int) -> torch.Tensor:
        return getattr(self, f"index{g}")


class BandSplit(nn.Module):
    """``(batch, time, features)`` -> ``(batch, time, bands, dim)``: per-band layer norm then linear."""

    def __init__(self, bands: list[tuple[int, int]], per_bin: int, dim: int, eps: float = 1e-5):
        super().__init__()
        self.layout = _Grouped(bands, per_bin)
        self.eps = eps
        self.norm_weight = nn.ParameterList()
        self.norm_bias = nn.ParameterList()
        self.weight = nn.ParameterList()
        self.bias = nn.ParameterList()
        for width, members in self.layout.groups:
            n = len(members)
            bound = 1.0 / math.sqrt(width)  # nn.Linear's default init
            self.norm_weight.append(nn.Parameter(torch.ones(n, width)))
            self.norm_bias.append(nn.Parameter(torch.zeros(n, width)))
            self.weight.append(nn.Parameter(torch.empty(n, width, dim).uniform_(-bound, bound)))
            self.bias.append(nn.Parameter(torch.empty(n, dim).uniform_(-bound, bound)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for g in range(len(self.layout.groups)):
            xb = x[..., self.layout.index(g)]  # (B, T, n, w)
            xn = nn.functional.layer_norm(xb, xb.shape[-1:], eps=self.eps) * self.norm_weight[g] + self.norm_bias[g]
            outs.append(torch.einsum("btnw,nwd->btnd", xn, self.weight[g]) + self.bias[g])
        return torch.cat(outs, dim=2)[:, :, self.layout.band_order]


class MaskEstimation(nn.Module):
    """``(batch, time, bands, dim)`` -> ``(batch, time, features)``: per band layer norm, MLP with
    Tanh, linear to twice the band width and a GLU."""

    def __init__(self, bands: list[tuple[int, int]], per_bin: int, dim: int, hidden: int, eps: float = 1e-5):
        super().__init__()
        self.layout = _Grouped(bands, per_bin)
        self.eps = eps
        k = self.layout.n_bands
        self.norm_weight = nn.Parameter(torch.ones(k, dim))
        self.norm_bias = nn.Parameter(torch.zeros(k, dim))
        self.w1 = nn.Parameter(torch.empty(k, dim, hidden).uniform_(-1, 1).mul_(1 / math.sqrt(dim)))
        self.b1 = nn.Parameter(torch.empty(k, hidden).uniform_(-1, 1).mul_(1 / math.sqrt(dim)))
        self.w2 = nn.ParameterList()
        self.b2 = nn.ParameterList()
        for width, members in self.layout.groups:
            self.w2.append(nn.Parameter(torch.empty(len(members), hidden, 2 * width).uniform_(-1, 1).mul_(1 / math.sqrt(hidden))))
            self.b2.append(nn.Parameter(torch.empty(len(members), 2 * width).uniform_(-1, 1).mul_(1 / math.sqrt(hidden))))
        inverse = torch.empty(self.layout.n_features, dtype=torch.long)
        pos = 0
        for g, (width, members) in enumerate(self.layout.groups):
            idx = self.layout.index(g).reshape(-1)
            inverse[idx] = torch.arange(pos, pos + idx.numel())
            pos += idx.numel()
        self.register_buffer("inverse", inverse, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xn = nn.functional.layer_norm(x, x.shape[-1:], eps=self.eps) * self.norm_weight + self.norm_bias
        h = torch.tanh(torch.einsum("btkd,kdh->btkh", xn, self.w1) + self.b1)  # (B, T, K, H)
        outs = []
        for g, (width, members) in enumerate(self.layout.groups):
            hg = h[:, :, members]
            y = torch.einsum("btnh,nhw->btnw", hg, self.w2[g]) + self.b2[g]
            outs.append((y[..., :width] * torch.sigmoid(y[..., width:])).reshape(*y.shape[:2], -1))  # GLU
        return torch.cat(outs, dim=-1)[..., self.inverse]
