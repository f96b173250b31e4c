"""Self-separation evidence (``curate scan --separator``), the SDX23 label-noise winner's idea:
separate each stem *on its own* with trained models; a stem that holds its label's content gives
most of its energy to its label's model, a mislabelled one to another target's model.

``separation_db = 10·log10(E_label / max_{t != label} E_t)`` over each fragment, with ``E_t`` the
energy of target ``t``'s output; NaN when the label has no model or only one model is loaded.
It is the second round of a two-round recipe: train with loss truncation on the noisy data, rescan
with the models, filter, retrain.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from bsrnn.separator import Separator
from curate.data.datasets import load_segment


def load_separator(paths, *, device: str = "cpu") -> Separator:
    """A :class:`Separator` with the models of ``paths``: any model sources of :mod:`bsrnn.checkpoint`
    (exported ``.ckpt``, Lightning checkpoint, training run folder, ``saved_models`` folder), loaded
    as ``pipelines separate -c`` does."""
    return Separator.from_checkpoint([Path(p) for p in paths], device=device)


def separation_db(
    fragments: pd.DataFrame, root, separator: Separator, *, on_stem: Callable[[str], None] | None = None
) -> np.ndarray:
    """``(rows,)`` float32 self-separation scores in dB for manifest rows (each stem separated once)."""
    out = np.full(len(fragments), np.nan, dtype=np.float32)
    targets = separator.targets
    if len(targets) < 2:
        return out
    pos = {idx: i for i, idx in enumerate(fragments.index)}
    for (track, stem), g in fragments.groupby(["track", "stem"], sort=False):
        if stem not in targets:
            continue
        if on_stem:
            on_stem(f"{track}/{stem}")
        parts = g["parts"].iloc[0] if "parts" in g.columns else None
        audio, sr = load_segment(root, g["path"].iloc[0], stem, 0, None, need=int(g["end"].max()), parts=parts)
        outs = separator(audio, sr)
        scale = separator.sample_rate / sr
        power = {t: np.square(y.numpy().astype(np.float64)).sum(axis=0) for t, y in outs.items()}
        cums = {t: np.concatenate([[0.0], np.cumsum(p)]) for t, p in power.items()}
        for r in g.itertuples():
            a = min(int(round(r.start * scale)), len(cums[stem]) - 1)
            b = min(int(round(r.end * scale)), len(cums[stem]) - 1)
            e = {t: c[b] - c[a] for t, c in cums.items()}
            other = max(v for t, v in e.items() if t != stem)
            out[pos[r.Index]] = 10 * np.log10((e[stem] + 1e-12) / (other + 1e-12))
    return out
