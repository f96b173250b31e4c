"""Separator outputs: is a stem a time-frequency mask applied to the mixture?

A mask-based separator (and, nearly, every separator) builds its estimate of a stem from the mixture's
STFT: ``S_hat = M X`` with a real mask ``0 <= M <= 1``. The estimate holds the stem plus what the mask
lets through of every other source, and in every bin it has the mixture's phase. A recorded stem has
its own phase: where it is present but not dominant, ``X = S + Q`` with the other sources ``Q`` at an
unrelated phase, so the angle between ``S`` and ``X`` spreads out.

:func:`mixture_lock` measures this per fragment: over the bins where the stem holds between ``low`` and
``high`` of the mixture's magnitude (present, not dominant), the magnitude-weighted mean of
``cos(angle(S X*))``. The mixture is the sum of the track's stems (a dataset's mixture file may be another
mix). A stem replaced by a mask estimate keeps its mixture phase in those bins even when the mixture is the
sum of the stems: there ``X = S_hat + Q`` and ``S_hat`` holds ``Q``'s own content under the mask, so
``S_hat`` and ``X`` still share ``Q``'s phase. A stem that only receives a leak locks only in the bins
where the leak dominates it.
"""

from __future__ import annotations

import numpy as np

from curate.scoring.spectra import StemSpectrum, frame_bounds

LOW = 0.1
HIGH = 0.6
STRIDE = 2


def mixture_lock(
    spectra: dict[str, StemSpectrum],
    bounds: dict[str, np.ndarray],
    *,
    low: float = LOW,
    high: float = HIGH,
) -> dict[str, np.ndarray]:
    """Per stem, the mixture phase lock of each fragment: ``(n,)`` float32 within -1..1 (NaN where no bin of
    the fragment qualifies).

    ``spectra``: STFT per stem of one track (same rate, size and length); ``bounds``: ``(n, 2)`` sample bounds
    per stem. The mixture is the sum of the stems in ``spectra``, read on the channel mean."""
    names = list(spectra)
    if not names:
        return {}
    # the channel mean, the lower half of the bins and every other frame: the lock is a mean over many
    # bins, and this reads it at an eighth of the cost
    frames = spectra[names[0]].spec.shape[-1]
    specs = [spectra[s].spec.mean(axis=0)[: spectra[s].spec.shape[1] // 2, ::STRIDE] for s in names]
    total = np.sum(specs, axis=0)
    out = {}
    for n, (name, sp) in enumerate(zip(names, specs)):
        fb = -(-frame_bounds(bounds[name], spectra[name].hop, frames) // STRIDE)
        siblings = [k for k in range(len(names)) if k != n]
        # leave each sibling out in turn (with two or more): a sibling that holds a copy of the stem (a
        # doubled or duplicated part) locks it to the mixture too, but a separator's output stays locked
        # to what is left, the pieces of the other siblings
        mixes = [total - specs[k] for k in siblings] if len(siblings) >= 2 else [total]
        mag_s = np.abs(sp)
        out[name] = np.min([_lock(sp, mag_s, mix, fb, low, high) for mix in mixes], axis=0).astype(np.float32)
    return out


def _lock(sp: np.ndarray, mag_s: np.ndarray, mix: np.ndarray, fb: np.ndarray, low: float, high: float) -> np.ndarray:
    """The lock of the stem ``sp`` (magnitude ``mag_s``) to ``mix`` (all ``(F, frames)``) over each of
    the frame bounds ``fb`` ``(n, 2)``; NaN where no bin qualifies (NaN also wins the minimum over left-out
    siblings). Per bin, weight ``|S|`` times ``cos`` is ``Re(S X*) / |X|``."""
    mag_x = np.abs(mix)
    sel = (mag_s >= low * mag_x) & (mag_s <= high * mag_x) & (mag_x > 1e-7)
    dot = sp.real * mix.real + sp.imag * mix.imag
    num = np.concatenate([[0.0], np.cumsum(np.where(sel, dot / np.maximum(mag_x, 1e-12), 0.0).sum(axis=0))])
    den = np.concatenate([[0.0], np.cumsum(np.where(sel, mag_s, 0.0).sum(axis=0))])
    n_num, n_den = num[fb[:, 1]] - num[fb[:, 0]], den[fb[:, 1]] - den[fb[:, 0]]
    lock = np.full(len(fb), np.nan)
    ok = n_den > 0
    lock[ok] = n_num[ok] / n_den[ok]
    return lock
