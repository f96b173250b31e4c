"""Sample regions of a stem as gains: which parts of a file training reads or an export keeps."""

from __future__ import annotations

import numpy as np


def region_mask(starts: np.ndarray, ends: np.ndarray, length: int, fade: int) -> np.ndarray:
    """Gain ``(length,)`` float32: 1 inside the union of the sample ranges ``[start, end)`` (window
    coordinates, which may reach outside ``[0, length)``), 0 outside, with linear fades of ``fade``
    samples at the union's edges that lie inside the window. The one masking rule of training's reads
    (:mod:`pipelines.data`) and of ``curate export``."""
    m = np.zeros(length, dtype=np.float32)
    merged: list[list[int]] = []
    for s, e in sorted(zip(starts.tolist(), ends.tolist())):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    for s0, e0 in merged:
        s, e = max(0, s0), min(length, e0)
        if e <= s:
            continue
        m[s:e] = 1.0
        f = min(fade, (e - s) // 2)
        if f > 0:
            ramp = (np.arange(f, dtype=np.float32) + 0.5) / f
            if s0 > 0:
                m[s : s + f] = ramp
            if e0 < length:
                m[e - f : e] = ramp[::-1]
    return m
