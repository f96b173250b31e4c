import numpy as np
import pandas as pd
import pytest

from curate.data.datasets import discover
from curate.scantrack import ScoreConfig, scan_track
from curate.scoring.labelmodel import LabelModelConfig, split_units
from curate.scoring.oof import out_of_fold_proba, relative_features
from curate.scoring.posterior import joint_posterior
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


def test_units_are_shared_by_overlapping_fragments():
    frame = pd.DataFrame({"track": "t", "stem": "bass", "start": [0, 3, 6], "end": [6, 9, 12]})
    arrays = {"x": np.arange(12).reshape(3, 2, 2)}
    units, arr, unit_of = split_units(frame, arrays)
    assert units["start"].tolist() == [0, 3, 6, 9]
    assert unit_of.tolist() == [[0, 1], [1, 2], [2, 3]]
    np.testing.assert_array_equal(arr["x"], [[0, 1], [2, 3], [6, 7], [10, 11]])


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


def _window(stems, probas, track="t", start=0):
    frame = pd.DataFrame({"track": track, "start": start, "stem": stems})
    return frame, np.asarray(probas, dtype=float)


def test_joint_assignment_catches_a_swap():
    # bass and drums files swapped: each looks like the other's label
    frame, p = _window(
        ["bass", "drums", "other", "vocals"],
        [[0.1, 0.8, 0.05, 0.05], [0.85, 0.05, 0.05, 0.05], [0.05, 0.05, 0.85, 0.05], [0.05, 0.05, 0.05, 0.85]],
    )
    post = joint_posterior(frame, p, CLASSES, config=LabelModelConfig(stem_pooling=0.0, prior_error=0.1))
    ok = post[np.arange(4), [0, 1, 2, 3]]
    assert ok[0] < 0.3 and ok[1] < 0.3 and ok[2] > 0.9 and ok[3] > 0.9
    assert [CLASSES[k] for k in post.argmax(axis=1)] == ["drums", "bass", "other", "vocals"]


def test_siblings_overrule_a_hesitant_classifier():
    # the vocals stem looks a bit more like "other" on its own, but the real "other" is its sibling
    frame, p = _window(
        ["bass", "drums", "other", "vocals"],
        [[0.9, 0.04, 0.03, 0.03], [0.03, 0.9, 0.04, 0.03], [0.03, 0.03, 0.9, 0.04], [0.03, 0.03, 0.5, 0.44]],
    )
    post = joint_posterior(frame, p, CLASSES, config=LabelModelConfig(stem_pooling=0.0, prior_error=0.1))
    assert post[3, CLASSES.index("vocals")] > 0.9
    alone = p[3, CLASSES.index("vocals")] / p[3].sum()
    assert alone < 0.5  # a per-fragment classifier alone would have flagged it


def test_replacement_by_another_class_is_flagged():
    # vocals file holds drums: two drum-like stems, no vocals-like one
    frame, p = _window(
        ["bass", "drums", "other", "vocals"],
        [[0.9, 0.04, 0.03, 0.03], [0.03, 0.9, 0.04, 0.03], [0.03, 0.03, 0.9, 0.04], [0.03, 0.9, 0.04, 0.03]],
    )
    post = joint_posterior(frame, p, CLASSES, config=LabelModelConfig(stem_pooling=0.0, prior_error=0.1))
    ok = post[np.arange(4), [0, 1, 2, 3]]
    assert ok[3] < 0.5 and ok[1] > 0.9 and ok[0] > 0.9 and ok[2] > 0.9


def test_product_of_experts_golden():
    from curate.scoring.oof import product_of_experts

    a = np.array([[0.8, 0.2], [0.5, 0.5]])
    b = np.array([[0.5, 0.5], [0.9, 0.1]])
    p = product_of_experts([a, b], [0.5, 0.5])
    np.testing.assert_allclose(p[0], [2 / 3, 1 / 3], atol=1e-9)  # sqrt(.4) : sqrt(.1) = 2 : 1
    np.testing.assert_allclose(p[1], [0.75, 0.25], atol=1e-9)  # sqrt(.45) : sqrt(.05) = 3 : 1
    np.testing.assert_allclose(product_of_experts([a, b], [1.0, 0.0]), a, atol=1e-12)


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
