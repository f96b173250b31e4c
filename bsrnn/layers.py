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
    """Index buffers for the width groups.

    ``perm``: all features reordered group by group, band by band (one gather for all groups;
    a split then hands each group its block, and both backpropagate without full-size zero fills);
    ``order``: band indices in group order; ``band_order``: inverse of ``order``.
    """

    def __init__(self, bands: list[tuple[int, int]], per_bin: int):
        super().__init__()
        self.n_bands = len(bands)
        self.n_features = bands[-1][1] * per_bin
        self.groups = _groups(bands, per_bin)
        order, perm = [], []
        for width, members in self.groups:
            order.extend(members)
            for k in members:
                perm.append(torch.arange(bands[k][0] * per_bin, bands[k][0] * per_bin + width))
        self.sizes = [width * len(members) for width, members in self.groups]
        self.counts = [len(members) for _, members in self.groups]
        self.register_buffer("perm", torch.cat(perm), persistent=False)
        self.register_buffer("inverse_perm", torch.argsort(torch.cat(perm)), persistent=False)
        self.register_buffer("order", torch.tensor(order), persistent=False)
        self.register_buffer("band_order", torch.argsort(torch.tensor(order)), persistent=False)


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
        blocks = x.index_select(-1, self.layout.perm).split(self.layout.sizes, dim=-1)
        outs = []
        for g, ((width, members), block) in enumerate(zip(self.layout.groups, blocks)):
            xb = block.unflatten(-1, (len(members), width))  # (B, T, n, w)
            xn = nn.functional.layer_norm(xb, (width,), eps=self.eps) * self.norm_weight[g] + self.norm_bias[g]
            outs.append(torch.einsum("btnw,nwd->btnd", xn, self.weight[g]) + self.bias[g])
        return torch.cat(outs, dim=2).index_select(2, self.layout.band_order)


class MaskEstimation(nn.Module):
    """``(batch, time, bands, dim)`` -> ``(batch, time, features)``: per band layer norm, MLP with
    Tanh, linear to twice the band width and a GLU. Band-axis parameters are stored in group order
    (``layout.order``)."""

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
            self.w2.append(
                nn.Parameter(torch.empty(len(members), hidden, 2 * width).uniform_(-1, 1).mul_(1 / math.sqrt(hidden)))
            )
            self.b2.append(
                nn.Parameter(torch.empty(len(members), 2 * width).uniform_(-1, 1).mul_(1 / math.sqrt(hidden)))
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xg = x.index_select(2, self.layout.order)  # bands in group order
        xn = nn.functional.layer_norm(xg, xg.shape[-1:], eps=self.eps) * self.norm_weight + self.norm_bias
        h = torch.tanh(torch.einsum("btkd,kdh->btkh", xn, self.w1) + self.b1)  # (B, T, K, H)
        outs = []
        for g, ((width, _), hg) in enumerate(zip(self.layout.groups, h.split(self.layout.counts, dim=2))):
            y = torch.einsum("btnh,nhw->btnw", hg, self.w2[g]) + self.b2[g]
            outs.append((y[..., :width] * torch.sigmoid(y[..., width:])).flatten(-2))  # GLU
        return torch.cat(outs, dim=-1).index_select(-1, self.layout.inverse_perm)
