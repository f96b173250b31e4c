"""curate/scoring/classify.py: the whole label model (rounds, EM noise rate)."""

import numpy as np
import pandas as pd

from curate.scoring.labelmodel import LabelModelConfig

CLASSES = ["bass", "drums", "other", "vocals"]


def _gaussian_dataset(noise_rate, *, tracks=40, d=16, seed=0):
    """One 6-s fragment (two units) per stem and track; the units' embeddings are drawn around their
    content class's mean. ``noise_rate`` of the stems hold another class's content under their label."""
    rng = np.random.default_rng(seed)
    means = 3.0 * rng.standard_normal((len(CLASSES), d))
    rows, emb, wrong = [], [], []
    for t in range(tracks):
        for k, stem in enumerate(CLASSES):
            bad = rng.random() < noise_rate
            content = (k + rng.integers(1, len(CLASSES))) % len(CLASSES) if bad else k
            rows.append({"track": f"t{t:02d}", "stem": stem, "start": 0, "end": 6 * 44100})
            emb.append(means[content] + rng.standard_normal((2, d)))
            wrong.append(bad)
    return pd.DataFrame(rows), np.asarray(emb, dtype=np.float32), np.asarray(wrong)


def test_noise_rate_estimate_follows_the_data_above_a_fifth():
    """The EM noise rate is the mean posterior probability of a wrong label; when a third of the stems
    are wrong it must rise above a fifth (it was capped at 0.2, and the prior then kept wrong labels;
    it reads 0.23-0.27 here, the classifier being fitted on the noisy labels), and on clean labels it
    stays at its floor."""
    from curate.scoring.classify import score_labels

    config = LabelModelConfig(use_alignment=False, rounds=2)
    frame, emb, wrong = _gaussian_dataset(0.35)
    res = score_labels(frame, emb, None, config=config)
    assert 0.23 <= res.eps <= wrong.mean() + 0.05
    clean = score_labels(*_gaussian_dataset(0.0)[:2], None, config=config)
    assert clean.eps <= 0.05
