"""Plain per-window loop implementation of the detector, the reference for parity checks.

Written for clarity, not speed: it follows the description in :mod:`sad.detect` window by
window, chunk by chunk, as the public BSRNN code does with ``unfold`` and ``chunk``.
"""

from __future__ import annotations

import numpy as np

from sad.detect import SADConfig


def detect_loop(audio: np.ndarray, sample_rate: int, config: SADConfig = SADConfig()) -> np.ndarray:
    """Same contract as :func:`sad.detect.detect`, one window at a time."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    window, hop, chunk = config.sizes(sample_rate)
    fragments = []
    start = 0
    while start + window <= audio.shape[1]:
        keep = True
        for ch in range(audio.shape[0]):
            rms = []
            for k in range(config.n_chunks):
                seg = audio[ch, start + k * chunk : start + (k + 1) * chunk]
                value = float(np.sqrt(np.mean(np.square(seg, dtype=np.float32), dtype=np.float32)))
                rms.append(config.eps if value == 0.0 else value)
            rms = np.asarray(rms, dtype=np.float32)
            thr = max(float(np.quantile(rms, config.quantile)), config.gamma)
            if not np.mean(rms > thr) > config.min_active:
                keep = False
                break
        if keep:
            fragments.append((start, start + window))
        start += hop
    return np.asarray(fragments, dtype=np.int64).reshape(-1, 2)
