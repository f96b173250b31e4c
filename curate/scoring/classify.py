"""Label quality from an instrument classifier and the structure of a track.

1. **Out-of-fold probabilities.** A scikit-learn classifier (standardised logistic regression) on
   the fragment embeddings, trained on the dataset's own, possibly noisy, labels; every fragment is
   predicted by a model that never saw its track (``GroupKFold`` by track, >= 5 folds where there
   are enough tracks). Embeddings are used as they are and relative to their track's average
   (the mean over the track's stems), so "the lowest stem of this song" is visible too; a second
   classifier on the embeddings alone is combined with it as a product of experts (the track's
   average is skewed when a sibling was replaced). Two more rounds refit without the units the
   previous round found doubtful (confident learning's pruning).
2. **Confident-learning thresholds** (Northcutt et al.): ``t_j`` = mean probability of class ``j``
   over the fragments labelled ``j``; a fragment whose own-label probability is below its threshold
   while another class reaches its own is a label issue.
3. **Joint assignment per track window.** Stems are time-aligned parts of one mixture and each
   label should appear once per track. For the fragments of one track that share a window, every
   assignment of true content classes to the stems is scored:
   ``prior(c) * prod_i likelihood_i(c_i)`` with ``prior`` = ``(1 - eps)`` per stem whose content
   matches its label, ``eps / (K - 1)`` per stem that does not, times ``rho`` when the assignment
   permutes the window's labels (a swap of two files is one event, not two independent errors).
   ``eps``, the noise rate, is estimated from the data by EM unless given. Likelihoods are classifier probabilities
   over class priors, pooled with
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
from sklearn.ensemble import ExtraTreesClassifier
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
    model: str = "logreg"
    """logreg, forest (extra trees) or ensemble (mean of both probabilities)."""
    rounds: int = 3
    """1: plain out-of-fold; n > 1: refit n - 1 times without the units the previous round found doubtful."""
    prior_error: float | None = None
    """eps: prior probability that a stem's content is not its label; None: estimated from the data (EM)."""
    max_prior_error: float = 0.5
    """Upper bound of the EM estimate of eps. Above a half, most labels would be wrong and the labels
    would not say which class is which. (It was 0.2, so that a hesitant classifier could not talk the
    rate up; but then a dataset with a third of its stems wrong kept a prior that held on to wrong labels.
    On the 94 real excerpts with 30 % of the stems mislabelled, EM now reads 0.31-0.32 and recall at
    0.7 goes 0.919 -> 0.928 (AUROC 0.958 -> 0.960); on the clean set it stays at its 0.02 floor.)"""
    swap_bonus: float = 30.0
    """rho: prior factor for assignments that permute the window's labels (a swap is one event, not two errors)."""
    foreign_prior: float = 0.005
    """Prior probability that a stem whose class matches its label still comes from another track."""
    use_alignment: bool = True
    """Weigh onset alignment with the sibling stems (:mod:`curate.scoring.context`)."""
    stem_pooling: float = 0.1
    """Weight of the stem's mean log-likelihood against the fragment's own."""
    temperature: float = 1.0
    """Classifier log-probabilities are divided by this (> 1 trusts the classifier less)."""
    relative: bool = True
    """Also give the classifier each embedding relative to its track's average stem."""
    absolute_weight: float = 0.5
    """With ``relative``: weight of a second classifier on the embeddings alone, combined with the
    first as a weighted product of experts. The track's average is itself corrupted when a sibling
    was replaced (a track with two vocals and no drums makes every stem look more percussive
    relative to it); the absolute classifier is not misled by that."""
    max_joint_stems: int = 6
    """Windows with more stems are scored stem by stem (no joint enumeration)."""
    reference_weight: float = 4.0
    """Weight of each reference-pool unit in the classifier fits: ``min(1, reference_weight / n)`` for a
    dataset of ``n`` tracks. A small dataset leans on the pool; a large one mostly teaches itself (a
    pool unlike the dataset's music would otherwise pull its decision boundaries)."""
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def relative_features(emb: np.ndarray, tracks: np.ndarray, stems: np.ndarray) -> np.ndarray:
    """``emb`` minus its track's average, where the average is the mean over stems of each stem's mean."""
    df = pd.DataFrame(emb)
    stem_mean = df.groupby([tracks, stems]).mean()
    track_mean = stem_mean.groupby(level=0).mean()
    return emb - track_mean.loc[tracks].to_numpy()


@dataclass
class ReferenceUnits:
    """Clean, correctly labelled units that join every classifier fit and are never scored.

    ``units``: one row per unit with ``track`` and ``stem`` (its label); ``emb``: ``(units, d)``, from
    the same embedder as the dataset. See :mod:`curate.scoring.reference`.
    """

    units: pd.DataFrame
    emb: np.ndarray
    source: str = "reference"

    def __len__(self) -> int:
        return len(self.units)

    def restrict(self, classes: list[str]) -> "ReferenceUnits":
        """Only the units whose label is one of ``classes``."""
        keep = self.units["stem"].isin(classes).to_numpy()
        return ReferenceUnits(self.units[keep].reset_index(drop=True), self.emb[keep], self.source)


@dataclass
class LabelScores:
    """What the label model found: per fragment, and per unit for benchmarks and reports."""

    fragments: pd.DataFrame
    """``label_score``, ``predicted_stem``, ``classifier_p``, ``cl_issue`` per fragment (input order)."""
    units: pd.DataFrame
    """``track``, ``stem``, ``start`` per unit (half fragment)."""
    classes: list[str]
    first_proba: np.ndarray
    """``(units, K)`` out-of-fold probabilities of the first round (every unit may teach the model)."""
    proba: np.ndarray
    """``(units, K)`` out-of-fold probabilities of the last round."""
    posterior: np.ndarray
    """``(units, K)`` joint-assignment posterior over the true content class."""
    eps: float
    """The noise rate the model used (EM estimate unless given)."""
    reference_units: int = 0
    dataset_share: float = 1.0
    """Share of the classifier's training weight that came from the dataset itself (the rest: the reference pool)."""


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


def _make_classifier(config: LabelModelConfig):
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
            clf = _make_classifier(config)
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


def split_units(
    frame: pd.DataFrame, arrays: dict[str, np.ndarray]
) -> tuple[pd.DataFrame, dict[str, np.ndarray], np.ndarray]:
    """Fragments -> units (their two halves, shared by overlapping fragments).

    Returns the unit frame (``track``, ``stem``, ``start``), the unit arrays ``(units, ...)`` taken
    from ``arrays`` ``(fragments, 2, ...)``, and ``(fragments, 2)`` unit indices of each fragment.
    """
    half = ((frame["end"] - frame["start"]) // 2).to_numpy()
    starts = frame["start"].to_numpy()[:, None] + np.array([0, 1])[None] * half[:, None]
    keys = pd.DataFrame(
        {
            "track": np.repeat(frame["track"].to_numpy(), 2),
            "stem": np.repeat(frame["stem"].to_numpy(), 2),
            "start": starts.ravel(),
        }
    )
    codes, _ = pd.factorize(pd.MultiIndex.from_frame(keys))
    first = pd.Series(np.arange(len(codes))).groupby(codes).first().to_numpy()
    units = keys.iloc[first].reset_index(drop=True)
    flat = {k: v.reshape((-1,) + v.shape[2:])[first] for k, v in arrays.items()}
    return units, flat, codes.reshape(-1, 2)


def score_labels(
    frame: pd.DataFrame,
    emb: np.ndarray,
    env: np.ndarray | None = None,
    *,
    config: LabelModelConfig = LabelModelConfig(),
    reference: ReferenceUnits | None = None,
) -> LabelScores:
    """Label scores of every fragment, and the unit-level model behind them (:class:`LabelScores`).

    ``frame``: manifest rows (``track``, ``stem``, ``start``, ``end``); ``emb`` ``(n, 2, d)`` and
    ``env`` ``(n, 2, frames)``: embeddings and onset envelopes of the two halves of each fragment.
    Halves are scored as units; a fragment is as good as its worse half. ``reference``: a clean pool
    (same embedder) that joins every fit (see :class:`ReferenceUnits`), so that a dataset of one or a
    few tracks still gets label scores. Raises ``ValueError`` with fewer than 2 tracks and no pool.
    """
    from curate.scoring.context import alignment_z, foreign_log_lr

    frame = frame.reset_index(drop=True)
    units, arr, unit_of = split_units(frame, {"emb": emb} if env is None else {"emb": emb, "env": env})
    # every class the dataset or the pool knows: a stem scanned alone (--stems vocals) can still hold drums
    pool_classes = set(reference.units["stem"]) if reference is not None and len(reference) else set()
    classes = sorted(set(units["stem"]) | pool_classes)
    labels = units["stem"].to_numpy()
    tracks = units["track"].to_numpy()
    x = arr["emb"]
    X = np.concatenate([x, relative_features(x, tracks, labels)], axis=1) if config.relative else x
    lab_idx = np.searchsorted(classes, labels)
    ref_abs = ref_rel = None
    n_tracks = len(np.unique(tracks))
    ref_w = 0.0
    if reference is not None:
        reference = reference.restrict(classes)
    if reference is not None and len(reference):
        if reference.emb.shape[1] != x.shape[1]:
            raise ValueError(
                f"reference pool embeddings have {reference.emb.shape[1]} dimensions, the dataset's {x.shape[1]}"
            )
        ref_w = min(1.0, config.reference_weight / n_tracks)
        r_lab, r_tr = reference.units["stem"].to_numpy(), reference.units["track"].to_numpy()
        ref_abs = (reference.emb, r_lab, ref_w)
        ref_rel = (
            (np.concatenate([reference.emb, relative_features(reference.emb, r_tr, r_lab)], axis=1), r_lab, ref_w)
            if config.relative
            else ref_abs
        )
    llr = None
    if env is not None and config.use_alignment:
        z, z_null = alignment_z(units, arr["env"], seed=config.seed)
        llr = foreign_log_lr(z, z_null, groups=labels)
    mask = np.ones(len(units), bool)
    first = None
    models_rel, models_abs = {}, {}
    for _ in range(max(1, config.rounds)):
        proba = out_of_fold_proba(
            X, labels, tracks, classes, config=config, train_mask=mask, reference=ref_rel, models=models_rel
        )
        if config.relative and config.absolute_weight > 0:
            absolute = out_of_fold_proba(
                x, labels, tracks, classes, config=config, train_mask=mask, reference=ref_abs, models=models_abs
            )
            proba = product_of_experts([proba, absolute], [1 - config.absolute_weight, config.absolute_weight])
        first = proba if first is None else first
        eps = config.prior_error
        if eps is None:  # EM: the noise rate is the mean posterior probability of a wrong label
            eps = 0.1
            for _ in range(5):
                post = joint_posterior(units, proba, classes, config=config, eps=eps, foreign_llr=llr)
                eps = float(np.clip(1 - post[np.arange(len(units)), lab_idx].mean(), 0.02, config.max_prior_error))
        post = joint_posterior(units, proba, classes, config=config, eps=eps, foreign_llr=llr)
        ok = post[np.arange(len(units)), lab_idx]
        if llr is not None:  # same class, but from another track
            f = config.foreign_prior
            ok = ok * (1 - f) / ((1 - f) + f * np.exp(llr))
        mask = ok >= 0.5
        if mask.sum() < 0.5 * len(mask):  # never prune away most of the data
            mask = ok >= np.quantile(ok, 0.5)
    thresholds = confident_thresholds(proba, lab_idx)
    issues = confident_issues(proba, lab_idx, thresholds)
    worst = unit_of[np.arange(len(frame)), ok[unit_of].argmin(axis=1)]
    fragments = pd.DataFrame(
        {
            "label_score": ok[worst].astype(np.float32),
            "predicted_stem": np.asarray(classes)[post[worst].argmax(axis=1)],
            "classifier_p": proba[worst, lab_idx[worst]].astype(np.float32),
            "cl_issue": issues[unit_of].any(axis=1),
        }
    )
    n_ref = 0 if ref_abs is None else len(ref_abs[0])
    share = len(units) * (n_tracks - 1) / max(n_tracks, 1)  # a unit's fits see the other tracks' units
    share = share / (share + n_ref * ref_w) if share + n_ref * ref_w > 0 else 0.0
    return LabelScores(fragments, units, list(classes), first, proba, post, float(eps), n_ref, float(share))
