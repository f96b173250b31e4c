"""Joint assignment per track window: the posterior over the true content class of every unit.

Stems are time-aligned parts of one mixture and each label should appear once per track. For the
units of one track that share a window, every assignment of true content classes to the stems is
scored: ``prior(c) * prod_i likelihood_i(c_i)`` with ``prior`` = ``(1 - eps)`` per stem whose content
matches its label, ``eps / (K - 1)`` per stem that does not, times ``rho`` when the assignment
permutes the window's labels (a swap of two files is one event, not two independent errors).
Likelihoods are out-of-fold classifier probabilities (:mod:`curate.scoring.oof`) over class priors,
pooled with the stem's other units (a whole-stem swap shows everywhere). A classifier that hesitates
between vocals and other on one stem cannot flip its label when a sibling already is the better "other".
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from curate.scoring.labelmodel import LabelModelConfig


def joint_posterior(
    frame: pd.DataFrame,
    proba: np.ndarray,
    classes: list[str],
    *,
    config: LabelModelConfig = LabelModelConfig(),
    eps: float | None = None,
    foreign_llr: np.ndarray | None = None,
) -> np.ndarray:
    """Posterior over the true content class of every unit, ``(n, K)``, from joint assignment.

    ``frame`` needs ``track``, ``stem`` and ``start`` (units with equal ``track`` and ``start``
    form one window); ``proba`` are out-of-fold classifier probabilities in the order of ``classes``.
    ``foreign_llr``: log likelihood ratio (foreign / belongs to the track) per unit; a stem whose
    content is another class without being part of a swap must come from another track, so
    those hypotheses are weighted by it.
    """
    k = len(classes)
    idx = {c: j for j, c in enumerate(classes)}
    lab = frame["stem"].map(idx).to_numpy()
    logp = np.log(np.clip(proba, 1e-6, 1.0)) / config.temperature
    prior = np.bincount(lab, minlength=k) / len(lab)
    if (prior == 0).any() and len(proba):
        # classes that only the reference pool holds (a scan of one stem): the labels do not give the
        # classifier's class prior; its mean prediction does (and with one unit, cancels its evidence)
        prior = proba.mean(axis=0)
    loglik = logp - np.log(np.maximum(prior, 1e-6))[None]
    # pool with the stem's other fragments
    key = frame["track"].astype(str) + "\x00" + frame["stem"].astype(str)
    stem_mean = pd.DataFrame(loglik).groupby(key.to_numpy()).transform("mean").to_numpy()
    w = config.stem_pooling
    loglik = (1 - w) * loglik + w * stem_mean

    llr = np.zeros(len(frame)) if foreign_llr is None else np.asarray(foreign_llr, dtype=float)
    if foreign_llr is not None:
        llr = (1 - w) * llr + w * pd.Series(llr).groupby(key.to_numpy()).transform("mean").to_numpy()
    eps = eps if eps is not None else (config.prior_error if config.prior_error is not None else 0.1)
    log_match, log_mismatch = np.log(1 - eps), np.log(eps / max(k - 1, 1))
    log_swap = np.log(config.swap_bonus)
    post = np.zeros((len(frame), k))
    for _, rows in frame.groupby(["track", "start"], sort=False).indices.items():
        rows = np.asarray(rows)
        m = len(rows)
        if m > config.max_joint_stems:
            lp = loglik[rows] + np.where(
                np.arange(k)[None] == lab[rows, None], log_match, log_mismatch + llr[rows, None]
            )
            lp -= lp.max(axis=1, keepdims=True)
            post[rows] = np.exp(lp) / np.exp(lp).sum(axis=1, keepdims=True)
            continue
        hyp = np.array(list(itertools.product(range(k), repeat=m)))  # (H, m)
        score = loglik[rows[None, :], hyp].sum(axis=1)
        score += np.where(hyp == lab[rows][None], log_match, log_mismatch).sum(axis=1)
        counts = np.zeros((len(hyp), k))
        for pos in range(m):
            counts[np.arange(len(hyp)), hyp[:, pos]] += 1
        is_perm = (counts == np.bincount(lab[rows], minlength=k)[None]).all(axis=1) & (hyp != lab[rows][None]).any(
            axis=1
        )
        score += log_swap * is_perm
        mismatch = hyp != lab[rows][None]
        score += np.where(is_perm[:, None], 0.0, mismatch * llr[rows][None]).sum(axis=1)
        weight = np.exp(score - score.max())
        weight /= weight.sum()
        for pos, r in enumerate(rows):
            post[r] = np.bincount(hyp[:, pos], weights=weight, minlength=k)
    return post
