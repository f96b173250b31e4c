"""Label quality from an instrument classifier and the structure of a track.

1. **Out-of-fold probabilities.** A scikit-learn classifier (standardised logistic regression) on
   the fragment embeddings, trained on the dataset's own, possibly noisy, labels; every fragment is
   predicted by a model that never saw its track (``GroupKFold`` by track, >= 5 folds where there
   are enough tracks). Embeddings are used as they are and relative to their track's average
   (the mean over the track's stems), so "the lowest stem of this song" is visible too. A second
   round refits without the fragments the first round found doubtful (confident learning's pruning).
2. **Confident-learning thresholds** (Northcutt et al.): ``t_j`` = mean probability of class ``j``
   over the fragments labelled ``j``; a fragment whose own-label probability is below its threshold
   while another class reaches its own is a label issue.
3. **Joint assignment per track window.** Stems are time-aligned parts of one mixture and each
   label should appear once per track. For the fragments of one track that share a window, every
   assignment of true content classes to the stems is scored:
   ``prior(c) * prod_i likelihood_i(c_i)`` with ``prior`` = ``(1 - eps)`` per stem whose content
   matches its label, ``eps / (K - 1)`` per stem that does not, and ``beta`` per pair of stems with
   the same content class. Likelihoods are classifier probabilities over class priors, pooled with
   the stem's other fragments (a whole-stem swap shows everywhere). ``label_score`` is the
   posterior probability that the stem's content is its label, ``predicted_stem`` the most
   probable content. A classifier that hesitates between vocals and other on one stem cannot flip
   its label when a sibling already is the better "other".
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


@dataclass(frozen=True)
class LabelModelConfig:
    """Settings of the label model (see the module docstring)."""

    folds: int = 5
    C: float = 0.5
    """Inverse L2 regularisation of the logistic regression."""
    rounds: int = 2
    """1: plain out-of-fold; 2: refit without the doubtful fragments of round 1."""
    prior_error: float = 0.1
    """eps: prior probability that a stem's content is not its label."""
    duplicate_penalty: float = 0.05
    """beta: prior factor for two stems of one window holding the same class."""
    stem_pooling: float = 0.5
    """Weight of the stem's mean log-likelihood against the fragment's own."""
    max_joint_stems: int = 6
    """Windows with more stems are scored stem by stem (no joint enumeration)."""
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def relative_features(emb: np.ndarray, tracks: np.ndarray, stems: np.ndarray) -> np.ndarray:
    """``emb`` minus its track's average, where the average is the mean over stems of each stem's mean."""
    df = pd.DataFrame(emb)
    stem_mean = df.groupby([tracks, stems]).mean()
    track_mean = stem_mean.groupby(level=0).mean()
    return emb - track_mean.loc[tracks].to_numpy()


def _make_classifier(config: LabelModelConfig):
    return make_pipeline(StandardScaler(), LogisticRegression(C=config.C, max_iter=3000))


def out_of_fold_proba(X: np.ndarray, labels: np.ndarray, groups: np.ndarray, classes: list[str], *, config: LabelModelConfig = LabelModelConfig(), train_mask: np.ndarray | None = None) -> np.ndarray:
    """Class probabilities ``(n, K)`` for every row from models that never saw its group (track).

    ``train_mask`` restricts which rows may be used for fitting (all rows are predicted).
    Folds: ``min(config.folds, n_groups)``; needs at least 2 groups.
    """
    groups = np.asarray(groups)
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise ValueError("out-of-fold prediction needs fragments from at least 2 tracks")
    train_mask = np.ones(len(X), bool) if train_mask is None else train_mask
    idx = {c: k for k, c in enumerate(classes)}
    y = np.array([idx[v] for v in labels])
    proba = np.zeros((len(X), len(classes)))
    prior = np.bincount(y, minlength=len(classes)) / len(y)
    for fit_rows, pred_rows in GroupKFold(n_splits=min(config.folds, n_groups)).split(X, y, groups):
        fit_rows = fit_rows[train_mask[fit_rows]]
        present = np.unique(y[fit_rows])
        if len(present) < 2:
            proba[pred_rows] = prior
            continue
        clf = _make_classifier(config)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(X[fit_rows], y[fit_rows])
        p = np.full((len(pred_rows), len(classes)), 1e-4)
        p[:, present] = clf.predict_proba(X[pred_rows])
        proba[pred_rows] = p / p.sum(axis=1, keepdims=True)
    return proba


def confident_thresholds(proba: np.ndarray, label_idx: np.ndarray) -> np.ndarray:
    """``t_j`` = mean of ``proba[:, j]`` over rows labelled ``j`` (``(K,)``; NaN for an absent class)."""
    k = proba.shape[1]
    return np.array([proba[label_idx == j, j].mean() if np.any(label_idx == j) else np.nan for j in range(k)])


def confident_issues(proba: np.ndarray, label_idx: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Rows whose own-label probability is below its threshold while another class reaches its own."""
    n = len(label_idx)
    own = proba[np.arange(n), label_idx] < thresholds[label_idx]
    reach = proba >= np.nan_to_num(thresholds, nan=np.inf)[None]
    reach[np.arange(n), label_idx] = False
    return own & reach.any(axis=1)


def joint_posterior(frame: pd.DataFrame, proba: np.ndarray, classes: list[str], *, config: LabelModelConfig = LabelModelConfig()) -> np.ndarray:
    """Posterior over the true content class of every fragment, ``(n, K)``, from joint assignment.

    ``frame`` needs ``track``, ``stem`` and ``start`` (fragments with equal ``track`` and ``start``
    form one window); ``proba`` are out-of-fold classifier probabilities in the order of ``classes``.
    """
    k = len(classes)
    idx = {c: j for j, c in enumerate(classes)}
    lab = frame["stem"].map(idx).to_numpy()
    logp = np.log(np.clip(proba, 1e-6, 1.0))
    prior = np.bincount(lab, minlength=k) / len(lab)
    loglik = logp - np.log(np.maximum(prior, 1e-6))[None]
    # pool with the stem's other fragments
    key = frame["track"].astype(str) + "\x00" + frame["stem"].astype(str)
    stem_mean = pd.DataFrame(loglik).groupby(key.to_numpy()).transform("mean").to_numpy()
    w = config.stem_pooling
    loglik = (1 - w) * loglik + w * stem_mean

    eps = config.prior_error
    log_match, log_mismatch = np.log(1 - eps), np.log(eps / max(k - 1, 1))
    log_dup = np.log(config.duplicate_penalty)
    post = np.zeros((len(frame), k))
    for _, rows in frame.groupby(["track", "start"], sort=False).indices.items():
        rows = np.asarray(rows)
        m = len(rows)
        if m > config.max_joint_stems:
            lp = loglik[rows] + np.where(np.arange(k)[None] == lab[rows, None], log_match, log_mismatch)
            lp -= lp.max(axis=1, keepdims=True)
            post[rows] = np.exp(lp) / np.exp(lp).sum(axis=1, keepdims=True)
            continue
        hyp = np.array(list(itertools.product(range(k), repeat=m)))  # (H, m)
        score = loglik[rows[None, :], hyp].sum(axis=1)
        score += np.where(hyp == lab[rows][None], log_match, log_mismatch).sum(axis=1)
        dup = sum((hyp[:, a] == hyp[:, b]).astype(float) for a in range(m) for b in range(a + 1, m)) if m > 1 else 0.0
        score += log_dup * dup
        weight = np.exp(score - score.max())
        weight /= weight.sum()
        for pos, r in enumerate(rows):
            post[r] = np.bincount(hyp[:, pos], weights=weight, minlength=k)
    return post


def score_labels(frame: pd.DataFrame, emb: np.ndarray, *, config: LabelModelConfig = LabelModelConfig()) -> pd.DataFrame:
    """``label_score``, ``predicted_stem``, ``cl_issue`` and the classifier probability of every fragment.

    ``frame``: manifest rows (``track``, ``stem``, ``start``) aligned with ``emb`` ``(n, d)``.
    """
    classes = sorted(frame["stem"].unique())
    labels = frame["stem"].to_numpy()
    tracks = frame["track"].to_numpy()
    X = np.concatenate([emb, relative_features(emb, tracks, labels)], axis=1)
    lab_idx = np.searchsorted(classes, labels)
    mask = np.ones(len(frame), bool)
    for _ in range(max(1, config.rounds)):
        proba = out_of_fold_proba(X, labels, tracks, classes, config=config, train_mask=mask)
        post = joint_posterior(frame, proba, classes, config=config)
        ok = post[np.arange(len(frame)), lab_idx]
        mask = ok >= 0.5
        if mask.sum() < 0.5 * len(mask):  # never prune away most of the data
            mask = ok >= np.quantile(ok, 0.5)
    thresholds = confident_thresholds(proba, lab_idx)
    return pd.DataFrame(
        {
            "label_score": ok.astype(np.float32),
            "predicted_stem": np.asarray(classes)[post.argmax(axis=1)],
            "classifier_p": proba[np.arange(len(frame)), lab_idx].astype(np.float32),
            "cl_issue": confident_issues(proba, lab_idx, thresholds),
        },
        index=frame.index,
    )
