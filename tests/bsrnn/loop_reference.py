"""Plain per-band-loop band split and mask estimation, as the public BSRNN implementations write
them (``nn.ModuleList`` of layer norms and linears), and weight copying into the vectorised layers."""

import torch
from torch import nn


class BandSplitLoop(nn.Module):
    def __init__(self, bands, per_bin, dim):
        super().__init__()
        self.slices = [(s * per_bin, e * per_bin) for s, e in bands]
        self.norms = nn.ModuleList([nn.LayerNorm(b - a) for a, b in self.slices])
        self.fcs = nn.ModuleList([nn.Linear(b - a, dim) for a, b in self.slices])

    def forward(self, x):  # (B, T, features) -> (B, T, K, dim)
        return torch.stack(
            [fc(norm(x[..., a:b])) for (a, b), norm, fc in zip(self.slices, self.norms, self.fcs)], dim=2
        )


class MaskEstimationLoop(nn.Module):
    def __init__(self, bands, per_bin, dim, hidden):
        super().__init__()
        self.widths = [(e - s) * per_bin for s, e in bands]
        self.mlps = nn.ModuleList(
            [
                nn.Sequential(
                    nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 2 * w), nn.GLU(dim=-1)
                )
                for w in self.widths
            ]
        )

    def forward(self, x):  # (B, T, K, dim) -> (B, T, features)
        return torch.cat([mlp(x[:, :, k]) for k, mlp in enumerate(self.mlps)], dim=-1)


def _positions(layout):
    """band index -> (group, position in group) of the vectorised layers' grouped parameters."""
    return {k: (g, p) for g, (_, members) in enumerate(layout.groups) for p, k in enumerate(members)}


@torch.no_grad()
def copy_band_split(loop: BandSplitLoop, vec) -> None:
    pos = _positions(vec.layout)
    for k, (norm, fc) in enumerate(zip(loop.norms, loop.fcs)):
        g, p = pos[k]
        vec.norm_weight[g][p] = norm.weight
        vec.norm_bias[g][p] = norm.bias
        vec.weight[g][p] = fc.weight.T
        vec.bias[g][p] = fc.bias


@torch.no_grad()
def copy_mask_estimation(loop: MaskEstimationLoop, vec) -> None:
    pos = _positions(vec.layout)
    for k, mlp in enumerate(loop.mlps):
        norm, l1, _, l2, _ = mlp
        g, p = pos[k]
        r = int(vec.layout.band_order[k])  # row of band k in group order
        vec.norm_weight[r] = norm.weight
        vec.norm_bias[r] = norm.bias
        vec.w1[r] = l1.weight.T
        vec.b1[r] = l1.bias
        vec.w2[g][p] = l2.weight.T
        vec.b2[g][p] = l2.bias
