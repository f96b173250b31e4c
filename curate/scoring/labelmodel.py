"""The label model's settings and data: :class:`LabelModelConfig`, the reference pool's units
(:class:`ReferenceUnits`), what the model found (:class:`LabelScores`), and fragments cut into units
(:func:`unit_bounds`, :func:`split_units`). The model itself: :mod:`curate.scoring.classify`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd


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
    alignment_pieces: int = 2
    """Each unit's onset alignment is read on this many equal pieces in time and the least aligned one
    counts (:func:`curate.scoring.context.alignment_z`). Whole units (1) against halves (2), 0.3+0.3 of
    the 94 real excerpts, three seeds: AUROC 0.975 -> 0.978, partial replacements found 0.859 -> 0.871,
    precision 0.964 both; 16 rendered songs at 0.4+0.4: precision 0.908 -> 0.921, at 0.2+0.2: 0.888 ->
    0.879."""
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
    units: int = 3
    """Units per fragment (:func:`unit_bounds`): 2 halves, or 3 with the middle half too. A fragment
    is as good as its worst unit."""
    seed: int = 0

    def __post_init__(self):
        _check_units(self.units)
        if not isinstance(self.alignment_pieces, int) or self.alignment_pieces < 1:
            raise ValueError(f"alignment_pieces must be a whole number of at least 1, got {self.alignment_pieces!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ReferenceUnits:
    """Clean, correctly labelled units that join every classifier fit and are never scored.

    ``units``: one row per unit with ``track`` and ``stem`` (its label); ``emb``: ``(units, d)``, from
    the same embedder as the dataset. See :mod:`curate.reference`.
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
    """``label_score`` and ``predicted_stem`` per fragment (input order)."""
    units: pd.DataFrame
    """``track``, ``stem``, ``start`` per unit (a half or the middle half of a fragment: :func:`unit_bounds`)."""
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


def _check_units(units: int) -> None:
    if units not in (2, 3):
        raise ValueError(f"units per fragment must be 2 or 3, got {units}")


def unit_bounds(bounds: np.ndarray, units: int = 3) -> np.ndarray:
    """The units of fragments ``bounds`` ``(n, 2)`` (samples, ``[start, end)``): ``(n, units, 2)``.

    ``units`` 2: the two halves; 3: the two halves and, between them, the middle half (a replacement as
    long as half the fragment then fills at least three quarters of one unit wherever it sits, where the
    halves alone leave it as little as half of each). Raises ``ValueError`` for another count."""
    _check_units(units)
    b = np.asarray(bounds, dtype=np.int64).reshape(-1, 2)
    half = (b[:, 1] - b[:, 0]) // 2
    offsets = [np.zeros_like(half), half] if units == 2 else [np.zeros_like(half), half // 2, half]
    starts = np.stack([b[:, 0] + o for o in offsets], 1)
    ends = np.minimum(starts + half[:, None], b[:, 1:2])
    ends[:, -1] = b[:, 1]
    return np.stack([starts, ends], -1)


def split_units(
    frame: pd.DataFrame, arrays: dict[str, np.ndarray], *, units: int | None = None
) -> tuple[pd.DataFrame, dict[str, np.ndarray], np.ndarray]:
    """Fragments -> units (:func:`unit_bounds`, shared by overlapping fragments).

    ``arrays``: ``(fragments, U, ...)``, U (2 or 3) units per fragment (``units`` where ``arrays`` is
    empty; default 2). Returns the unit frame
    (``track``, ``stem``, ``start``), the unit arrays ``(units, ...)`` and ``(fragments, U)`` unit
    indices of each fragment.
    """
    per = next(iter(arrays.values())).shape[1] if arrays else (units or 2)
    starts = unit_bounds(frame[["start", "end"]].to_numpy(), per)[..., 0]
    keys = pd.DataFrame(
        {
            "track": np.repeat(frame["track"].to_numpy(), per),
            "stem": np.repeat(frame["stem"].to_numpy(), per),
            "start": starts.ravel(),
        }
    )
    codes, _ = pd.factorize(pd.MultiIndex.from_frame(keys))
    first = pd.Series(np.arange(len(codes))).groupby(codes).first().to_numpy()
    units = keys.iloc[first].reset_index(drop=True)
    flat = {k: v.reshape((-1,) + v.shape[2:])[first] for k, v in arrays.items()}
    return units, flat, codes.reshape(-1, per)
