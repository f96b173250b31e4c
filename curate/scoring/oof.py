"""Out-of-fold class probabilities: what a classifier that never saw a fragment's track says it holds.

A scikit-learn classifier (standardised logistic regression, extra trees, or the mean of both) on the
unit embeddings, trained on the dataset's own, possibly noisy, labels; every unit is predicted by
a model fitted on the other tracks (``GroupKFold`` by track), optionally joined by a clean reference
pool. This is the first step of confident learning (Northcutt et al.: out-of-fold predicted
probabilities); :mod:`curate.scoring.posterior` reads them jointly per track window.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.ensemble import ExtraTreesClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from curate.scoring.labelmodel import LabelModelConfig


def relative_features(emb: np.ndarray, tracks: np.ndarray, stems: np.ndarray) -> np.ndarray:
    """``emb`` minus its track's average, where the average is the mean over stems of each stem's mean."""
    df = pd.DataFrame(emb)
    stem_mean = df.groupby([tracks, stems]).mean()
    track_mean = stem_mean.groupby(level=0).mean()
    return emb - track_mean.loc[tracks].to_numpy()


def _fit(clf, X, y, w):
    """``clf.fit`` with per-row weights routed to the estimator (or every ensemble member)."""
    if w is None:
        return clf.fit(X, y)
    if isinstance(clf, _Ensemble):
        for m in clf.members:
            _fit(m, X, y, w)
        return clf
    if hasattr(clf, "steps"):
        return clf.fit(X, y, **{f"{clf.steps[-1][0]}__sample_weight": w})
    return clf.fit(X, y, sample_weight=w)


class _Ensemble:
    """Mean of the class probabilities of several classifiers fitted on the same data."""

    def __init__(self, members):
        self.members = members

    def fit(self, X, y):
        for m in self.members:
            m.fit(X, y)
        return self

    def predict_proba(self, X):
        return np.mean([m.predict_proba(X) for m in self.members], axis=0)


def make_classifier(config: LabelModelConfig):
    # warm_start: a refit of the same fold (the next round, without the doubtful units) starts from the last solution
    logreg = make_pipeline(StandardScaler(), LogisticRegression(C=config.C, max_iter=300, warm_start=True))
    forest = ExtraTreesClassifier(
        n_estimators=300, min_samples_leaf=2, max_features="sqrt", n_jobs=1, random_state=config.seed
    )
    return {"logreg": logreg, "forest": forest, "ensemble": _Ensemble([logreg, forest])}[config.model]


def out_of_fold_proba(
    X: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    classes: list[str],
    *,
    config: LabelModelConfig = LabelModelConfig(),
    train_mask: np.ndarray | None = None,
    reference: tuple[np.ndarray, np.ndarray, float] | None = None,
    models: dict | None = None,
) -> np.ndarray:
    """Class probabilities ``(n, K)`` for every row from models that never saw its group (track).

    ``train_mask`` restricts which rows may be used for fitting (all rows are predicted).
    ``reference``: ``(X_ref, labels_ref, weight)``, rows that join every fit with that weight and are
    never predicted. ``models``: a dict that keeps each fold's classifier between calls on the same rows
    (refits start from the last solution). Folds: ``min(config.folds, n_groups)``; needs at least 2 groups, or one group
    and reference rows (then the reference alone teaches the model). Raises ``ValueError`` otherwise.
    """
    groups = np.asarray(groups)
    n_groups = len(np.unique(groups))
    has_ref = reference is not None and len(reference[0]) > 0
    if n_groups < 2 and not has_ref:
        raise ValueError("out-of-fold prediction needs fragments from at least 2 tracks (or a reference pool)")
    train_mask = np.ones(len(X), bool) if train_mask is None else train_mask
    idx = {c: k for k, c in enumerate(classes)}
    y = np.array([idx[v] for v in labels])
    proba = np.zeros((len(X), len(classes)))
    prior = np.bincount(y, minlength=len(classes)) / len(y)
    if n_groups >= 2:
        splits = GroupKFold(n_splits=min(config.folds, n_groups)).split(X, y, groups)
    else:
        splits = [(np.zeros(0, np.int64), np.arange(len(X)))]
    if has_ref:
        x_ref, y_ref = reference[0], np.array([idx[v] for v in reference[1]])
    for fold, (fit_rows, pred_rows) in enumerate(splits):
        fit_rows = fit_rows[train_mask[fit_rows]]
        xf, yf, wf = X[fit_rows], y[fit_rows], None
        if has_ref:
            xf, yf = np.concatenate([xf, x_ref]), np.concatenate([yf, y_ref])
            wf = np.concatenate([np.ones(len(fit_rows)), np.full(len(y_ref), float(reference[2]))])
        present = np.unique(yf)
        if len(present) < 2:
            proba[pred_rows] = prior
            continue
        clf = models.get((fold, tuple(present))) if models is not None else None
        if clf is None:
            clf = make_classifier(config)
            if models is not None:
                models[(fold, tuple(present))] = clf
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _fit(clf, xf, yf, wf)
        p = np.full((len(pred_rows), len(classes)), 1e-4)
        p[:, present] = clf.predict_proba(X[pred_rows])
        proba[pred_rows] = p / p.sum(axis=1, keepdims=True)
    return proba


def product_of_experts(probas: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """Normalised weighted geometric mean of class probabilities ``(n, K)`` (each clipped at 1e-6)."""
    lp = sum(w * np.log(np.clip(p, 1e-6, 1.0)) for p, w in zip(probas, weights))
    p = np.exp(lp - lp.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)
