"""curate/scoring/oof.py: out-of-fold probabilities never come from a model that saw the track."""

import numpy as np
import pandas as pd
import pytest

from curate.data.datasets import discover
from curate.scantrack import ScoreConfig, scan_track
from curate.scoring.labelmodel import split_units
from curate.scoring.oof import out_of_fold_proba, relative_features
from curate.simulate.synth import synth_dataset

CLASSES = ["bass", "drums", "other", "vocals"]


@pytest.fixture(scope="module")
def synth_embeddings(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn8")
    synth_dataset(root, tracks=8, seconds=12, seed=1)
    rows, embs = [], []
    for t in discover(root):
        scanned = scan_track(t, list(CLASSES), score=ScoreConfig())
        rows.append(scanned.rows)
        embs.append(scanned.arrays["emb"])
    return pd.concat(rows, ignore_index=True), np.concatenate(embs)  # (fragments, 2 halves, d)


def test_classifier_separates_synth_stems_out_of_fold(synth_embeddings):
    df, emb = synth_embeddings
    units, arr, _ = split_units(df, {"emb": emb})
    x, stems, tracks = arr["emb"], units.stem.to_numpy(), units.track.to_numpy()
    X = np.concatenate([x, relative_features(x, tracks, stems)], axis=1)
    proba = out_of_fold_proba(X, stems, tracks, CLASSES)
    acc = np.mean(np.asarray(CLASSES)[proba.argmax(axis=1)] == stems)
    assert acc >= 0.95
    assert len(df) > 60 and set(df.stem) == set(CLASSES)


def test_folds_never_share_a_track(monkeypatch):
    """Every row must be predicted by a model fitted without its track."""
    import curate.scoring.oof as oof

    seen = []

    class Spy:
        def __init__(self, *a, **k):
            pass

        def fit(self, X, y):
            self.rows = set(map(int, X[:, 0]))
            return self

        def predict_proba(self, X):
            assert not (set(map(int, X[:, 0])) & self.rows)
            seen.append(len(X))
            return np.full((len(X), 2), 0.5)

    monkeypatch.setattr(oof, "make_classifier", lambda config: Spy())
    n = 60
    X = np.arange(n, dtype=float)[:, None]
    groups = np.repeat(np.arange(12), 5)
    labels = np.where(np.arange(n) % 2, "a", "b")
    out_of_fold_proba(X, labels, groups, ["a", "b"])
    assert sum(seen) == n and len(seen) == 5  # 5 folds, each row predicted once


def test_product_of_experts_golden():
    from curate.scoring.oof import product_of_experts

    a = np.array([[0.8, 0.2], [0.5, 0.5]])
    b = np.array([[0.5, 0.5], [0.9, 0.1]])
    p = product_of_experts([a, b], [0.5, 0.5])
    np.testing.assert_allclose(p[0], [2 / 3, 1 / 3], atol=1e-9)  # sqrt(.4) : sqrt(.1) = 2 : 1
    np.testing.assert_allclose(p[1], [0.75, 0.25], atol=1e-9)  # sqrt(.45) : sqrt(.05) = 3 : 1
    np.testing.assert_allclose(product_of_experts([a, b], [1.0, 0.0]), a, atol=1e-12)
