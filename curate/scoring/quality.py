"""``quality``: one 0-1 score per fragment from label score and bleed, and the reasons for rejecting.

    quality = label_score * bleed_factor(bleed_db) * separation_factor(separation_db) * separated_factor(mixture_lock)
    bleed_factor(b) = 1 / (1 + 10 ** ((b - BLEED_MID_DB) / BLEED_SLOPE_DB))
    separation_factor(d) = 1 / (1 + 10 ** ((SEPARATION_MID_DB - d) / SEPARATION_SLOPE_DB))

``separation_factor`` is 1 unless ``curate scan --separator`` ran (then 0.5 when the strongest other
target's model takes 3 dB more of the stem than the labelled target's model, 0.97 at equal energy).

``separated_factor`` is 0.5 at a mixture phase lock of ``LOCK_MID`` and falls to 0.1 ``LOCK_SLOPE`` above it
(:mod:`curate.scoring.separated`: a separator's output keeps the mixture's phase where it is not dominant;
``curate filter --keep-separated`` leaves it out, for users who train on separator outputs on purpose).

``label_score`` is the probability that the stem's content is its label (see
:mod:`curate.scoring.classify`; 1 when no classifier ran). ``bleed_factor`` is 0.5 at -22 dB of leakage,
0.9 at -23.9 dB, 0.99 at -26 dB and 0.1 at -20.1 dB: at ``--threshold 0.7`` a fragment with a
certain label is rejected from about -22.7 dB of bleed on (leaks worth removing are -20 dB and up).
``curate filter --bleed-db B`` moves that bound to ``B`` (the midpoint follows, see :func:`bleed_mid_for`):
live multitracks carry real microphone bleed, and a user may choose to keep it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from curate.scoring.bleed import BleedConfig

BLEED_MID_DB = -22.0
BLEED_SLOPE_DB = 2.0
SEPARATION_MID_DB = -3.0
SEPARATION_SLOPE_DB = 2.0
LOCK_MID = 0.66
LOCK_SLOPE = 0.025


def bleed_factor(bleed_db, *, mid_db: float = BLEED_MID_DB) -> np.ndarray:
    """0-1 factor for a bleed level in dB relative to the fragment (NaN counts as no bleed); 0.5 at ``mid_db``."""
    b = np.nan_to_num(np.asarray(bleed_db, dtype=np.float64), nan=-200.0)
    return 1.0 / (1.0 + 10 ** ((b - mid_db) / BLEED_SLOPE_DB))


def bleed_bound(threshold: float, *, mid_db: float = BLEED_MID_DB) -> float:
    """The bleed level (dB) up to which a fragment with a certain label keeps ``quality >= threshold`` (0-1
    exclusive)."""
    return float(mid_db + BLEED_SLOPE_DB * np.log10(1.0 / threshold - 1.0))


def bleed_mid_for(bound_db: float, threshold: float) -> float:
    """The midpoint (dB) at which a fragment with a certain label passes ``threshold`` up to ``bound_db`` of bleed
    (the inverse of :func:`bleed_bound`)."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"a bleed bound needs a threshold strictly between 0 and 1, got {threshold}")
    return float(bound_db - bleed_bound(threshold, mid_db=0.0))


def separation_factor(separation_db) -> np.ndarray:
    """0-1 factor for a self-separation score in dB (NaN, no separator, counts as 1)."""
    d = np.nan_to_num(np.asarray(separation_db, dtype=np.float64), nan=200.0)
    return 1.0 / (1.0 + 10 ** ((SEPARATION_MID_DB - d) / SEPARATION_SLOPE_DB))


def separated_factor(mixture_lock) -> np.ndarray:
    """0-1 factor for a mixture phase lock (-1..1; NaN, not measured, counts as 1); 0.5 at ``LOCK_MID``."""
    lock = np.nan_to_num(np.asarray(mixture_lock, dtype=np.float64), nan=-1.0)
    return 1.0 / (1.0 + 10 ** ((lock - LOCK_MID) / LOCK_SLOPE))


def quality(
    label_score,
    bleed_db,
    separation_db=None,
    mixture_lock=None,
    *,
    bleed_mid_db: float = BLEED_MID_DB,
    keep_separated: bool = False,
) -> np.ndarray:
    """Combined 0-1 score (float32) of label score (NaN counts as 1), bleed, self-separation and, unless
    ``keep_separated``, the mixture phase lock."""
    ls = np.nan_to_num(np.asarray(label_score, dtype=np.float64), nan=1.0)
    q = ls * bleed_factor(bleed_db, mid_db=bleed_mid_db)
    if separation_db is not None:
        q = q * separation_factor(separation_db)
    if mixture_lock is not None and not keep_separated:
        q = q * separated_factor(mixture_lock)
    return q.astype(np.float32)


def _blame(label_score: float, bleed_fac: float, threshold: float) -> tuple[bool, bool]:
    """Which component a rejected fragment's low quality is due to: ``(label, bleed)``."""
    label = label_score < threshold or (label_score < 1.0 and label_score <= bleed_fac)
    bleed = bleed_fac < threshold or (bleed_fac < 1.0 and bleed_fac < label_score)
    return label, bleed


def _direction(source: str, delay_ms) -> str:
    """Why the leak is read as coming from ``source`` into this stem, for a reason's text."""
    if delay_ms is None or delay_ms != delay_ms:
        return ""
    if delay_ms > BleedConfig.min_delay_ms:
        return f" (a copy of {source} arriving {delay_ms:.1f} ms later)"
    return f" (at zero delay: {source} holds the shared content whole, this stem as the smaller share)"


def reasons(
    frame: pd.DataFrame, threshold: float, *, bleed_mid_db: float = BLEED_MID_DB, keep_separated: bool = False
) -> pd.DataFrame:
    """Why each row of ``frame`` whose ``quality`` is below ``threshold`` is rejected.

    Needs ``stem``, ``quality``, ``label_score``, ``predicted_stem``, ``bleed_db``, ``bleed_stem``; uses
    ``separation_db`` and ``mixture_lock`` where present. Returns columns ``reason`` (human readable) and
    ``kind`` (``label``, ``bleed``, ``label+bleed``, ``separated`` or ``other``); rows that pass get None in
    both.
    """
    texts, kinds = [], []
    for r in frame.itertuples():
        if r.quality >= threshold:
            texts.append(None)
            kinds.append(None)
            continue
        ls = r.label_score if r.label_score == r.label_score else 1.0
        bleed_fac = float(bleed_factor(r.bleed_db, mid_db=bleed_mid_db))
        lock = getattr(r, "mixture_lock", None)
        sep_fac = 1.0 if keep_separated or lock is None or lock != lock else float(separated_factor(lock))
        # the lock is blamed where its factor fails on its own or is the lowest of the three
        separated = sep_fac < threshold or (sep_fac < 1.0 - 1e-3 and sep_fac <= min(ls, bleed_fac))
        if separated:  # the lock explains the low quality: the other parts only where they fail on their own
            label, bleed = ls < threshold, bleed_fac < threshold
        else:
            label, bleed = _blame(ls, bleed_fac, threshold)
        parts = []
        if label:
            if isinstance(r.predicted_stem, str) and r.predicted_stem != r.stem:
                parts.append(f"looks like {r.predicted_stem} (p={1.0 - ls:.2f})")
            else:
                parts.append(f"label uncertain (p={ls:.2f})")
        if bleed:
            src = r.bleed_stem if isinstance(r.bleed_stem, str) else "other stems"
            parts.append(f"{src} bleed at {r.bleed_db:.0f} dB{_direction(src, getattr(r, 'bleed_delay_ms', None))}")
        sep = getattr(r, "separation_db", None)
        if sep is not None and sep == sep and float(separation_factor(sep)) < threshold:
            parts.append(f"separator hears another stem ({sep:.0f} dB)")
        if separated:
            parts.append(
                f"predicted kind: separated (a separator's output: keeps the mixture's phase, lock {lock:.2f})"
            )
        if not parts:
            parts.append(f"low quality ({r.quality:.2f})")
        texts.append("; ".join(parts))
        on = (("label", label), ("bleed", bleed), ("separated", separated))
        kinds.append("+".join(k for k, v in on if v) or "other")
    return pd.DataFrame(
        {
            "reason": pd.Series(texts, index=frame.index, dtype=object),
            "kind": pd.Series(kinds, index=frame.index, dtype=object),
        }
    )
