"""Chunked separation of long audio with windowed overlap-add.

The signal is cut into frames of ``frame_s`` seconds every ``hop_s`` seconds, the model runs on
batches of frames, and the outputs are recombined by overlap-add with a trapezoid window (linear
fades of ``frame - hop`` samples, at most half a frame) divided by the summed windows. An identity
model therefore returns its input exactly, at any length (shorter than one frame included), with
no gain ripple between frames. Only ``batch_size`` frames exist at a time.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def trapezoid(length: int, fade: int) -> torch.Tensor:
    """Window of ``length`` samples: linear fade-in and fade-out of ``fade`` samples, flat in between."""
    w = torch.ones(length)
    if fade > 0:
        ramp = (torch.arange(fade) + 0.5) / fade
        w[:fade] = ramp
        w[length - fade :] = ramp.flip(0)
    return w


class Separator:
    """Runs a model ``(batch, channels, samples) -> (batch, channels, samples)`` over long audio."""

    def __init__(self, model: nn.Module, *, sample_rate: int = 44100, frame_s: float = 3.0, hop_s: float = 2.5,
                 batch_size: int = 4, device: str | torch.device | None = None):
        if not 0 < hop_s <= frame_s:
            raise ValueError(f"hop ({hop_s} s) must be > 0 and at most the frame ({frame_s} s)")
        self.model = model
        self.frame = int(round(frame_s * sample_rate))
        self.hop = int(round(hop_s * sample_rate))
        self.fade = min(self.frame - self.hop, self.frame // 2)
        self.batch_size = batch_size
        self.device = torch.device(device) if device is not None else next((p.device for p in model.parameters()), torch.device("cpu"))

    @torch.no_grad()
    def separate(self, audio) -> torch.Tensor:
        """``audio`` ``(channels, samples)`` (tensor or array) -> separated ``(channels, samples)`` float32 on the CPU."""
        x = torch.as_tensor(np.asarray(audio) if not torch.is_tensor(audio) else audio, dtype=torch.float32)
        if x.ndim != 2:
            raise ValueError(f"audio must be (channels, samples), got shape {tuple(x.shape)}")
        channels, n = x.shape
        frame, hop, pad = self.frame, self.hop, self.fade
        n_frames = max(1, int(np.ceil((n + 2 * pad - frame) / hop)) + 1)
        total = (n_frames - 1) * hop + frame
        padded = torch.zeros(channels, total)
        padded[:, pad : pad + n] = x
        window = trapezoid(frame, self.fade)
        out = torch.zeros(channels, total)
        weight = torch.zeros(total)
        for first in range(0, n_frames, self.batch_size):
            idx = range(first, min(n_frames, first + self.batch_size))
            batch = torch.stack([padded[:, i * hop : i * hop + frame] for i in idx]).to(self.device)
            y = self.model(batch).float().cpu()
            for b, i in enumerate(idx):
                out[:, i * hop : i * hop + frame] += y[b] * window
                weight[i * hop : i * hop + frame] += window
        return (out / weight.clamp_min(1e-8))[:, pad : pad + n]
