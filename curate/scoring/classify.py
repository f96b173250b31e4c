"""Label quality from an instrument classifier and the structure of a track (:func:`score_labels`).

1. **Out-of-fold probabilities** (:mod:`curate.scoring.oof`): a classifier on the fragment
   embeddings, trained on the dataset's own, possibly noisy, labels and a clean reference pool; every
   fragment is predicted by a model that never saw its track. Embeddings are used as they are and
   relative to their track's average (the mean over the track's stems), so "the lowest stem of this
   song" is visible too; a second classifier on the embeddings alone is combined with it as a product
   of experts (the track's average is skewed when a sibling was replaced).
2. **Joint assignment per track window** (:mod:`curate.scoring.posterior`): each label appears once
   per track, and a swap of two files is one event; ``eps``, the noise rate, is estimated by EM (the
   mean posterior probability of a wrong label) unless given.
3. **Pruning rounds** (confident learning's pruning): two more rounds refit the classifiers without
   the units the previous round's posterior found doubtful.

``label_score`` is the posterior probability that the stem's content is its label (times the
probability that it belongs to its track, from onset alignment: :mod:`curate.scoring.context`),
``predicted_stem`` the most probable content. Settings and result types: :mod:`curate.scoring.labelmodel`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from curate.scoring.labelmodel import LabelModelConfig, LabelScores, ReferenceUnits, split_units
from curate.scoring.oof import out_of_fold_proba, product_of_experts, relative_features
from curate.scoring.posterior import joint_posterior


def score_labels(
    frame: pd.DataFrame,
    emb: np.ndarray,
    env: np.ndarray | None = None,
    *,
    config: LabelModelConfig = LabelModelConfig(),
    reference: ReferenceUnits | None = None,
) -> LabelScores:
    """Label scores of every fragment, and the unit-level model behind them (:class:`LabelScores`).

    ``frame``: manifest rows (``track``, ``stem``, ``start``, ``end``); ``emb`` ``(n, U, d)`` and
    ``env`` ``(n, U, frames)``: embeddings and onset envelopes of each fragment's U units (its halves,
    and with U = 3 its middle half: :func:`~curate.scoring.labelmodel.unit_bounds`). A fragment is as
    good as its worst unit. ``reference``: a clean pool
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
        z, z_null = alignment_z(units, arr["env"], seed=config.seed, pieces=config.alignment_pieces)
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
    worst = unit_of[np.arange(len(frame)), ok[unit_of].argmin(axis=1)]
    fragments = pd.DataFrame(
        {
            "label_score": ok[worst].astype(np.float32),
            "predicted_stem": np.asarray(classes)[post[worst].argmax(axis=1)],
        }
    )
    n_ref = 0 if ref_abs is None else len(ref_abs[0])
    share = len(units) * (n_tracks - 1) / max(n_tracks, 1)  # a unit's fits see the other tracks' units
    share = share / (share + n_ref * ref_w) if share + n_ref * ref_w > 0 else 0.0
    return LabelScores(fragments, units, list(classes), first, proba, post, float(eps), n_ref, float(share))
