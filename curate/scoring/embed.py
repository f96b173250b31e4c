"""Fragment embedders for the classifier, chosen with ``curate scan --embedder NAME``.

* ``musicnn`` (default): the pretrained MTT_musicnn tagger shipped with the package
  (:mod:`curate.scoring.musicnn`): pooled features and penultimate layer, knowledge that does not come
  from the dataset's labels. On the 94 real MUSDB18 excerpts its out-of-fold unit accuracy is
  0.98 against 0.97 for ``features``, on rendered songs 0.98 against 0.96, and with one track and
  the reference pool it still names every stem of a real excerpt (``features``: not the drums).
* ``features``: hand-made descriptors (:mod:`curate.scoring.features`), no weights needed.
* ``features+musicnn``: both, concatenated.
* ``panns``: PANNs Cnn14 embeddings and AudioSet scores (:mod:`curate.scoring.panns`), from a checkpoint
  file the user downloaded (``--panns-checkpoint``).
"""

from __future__ import annotations

import functools

import numpy as np

from curate.common.errors import StemcurateError
from curate.scoring.features import fragment_features
from curate.scoring.spectra import StemSpectrum

EMBEDDERS = ("features", "musicnn", "features+musicnn", "panns")
DEFAULT_EMBEDDER = "musicnn"


class FeatureEmbedder:
    """Hand-made descriptors per fragment (see :mod:`curate.scoring.features`)."""

    name = "features"

    def embed(self, audio: np.ndarray, spectrum: StemSpectrum, bounds: np.ndarray) -> np.ndarray:
        """``(n, d)`` float32 for the fragments ``bounds`` ``(n, 2)`` of one stem ``audio`` ``(channels, samples)``."""
        return fragment_features(spectrum, bounds)


class ConcatEmbedder:
    """Several embedders side by side: ``(n, d_1 + d_2 + ...)``."""

    def __init__(self, members):
        self.members = list(members)
        self.name = "+".join(m.name for m in self.members)

    def embed(self, audio: np.ndarray, spectrum: StemSpectrum, bounds: np.ndarray) -> np.ndarray:
        return np.concatenate([m.embed(audio, spectrum, bounds) for m in self.members], axis=1)


@functools.lru_cache(maxsize=4)
def make_embedder(
    name: str, panns_checkpoint: str | None = None, device: str = "cpu", musicnn_weights: str | None = None
):
    """The embedder called ``name`` (cached per process, so a model loads once).

    Raises :class:`StemcurateError` for an unknown name or a model file that is missing or unreadable.
    """
    if name not in EMBEDDERS:
        raise StemcurateError(f"unknown embedder '{name}' (use {', '.join(EMBEDDERS)})")
    if name == "panns":
        from curate.scoring.panns import PannsEmbedder

        if not panns_checkpoint:
            raise StemcurateError("--embedder panns needs --panns-checkpoint PATH (Cnn14_mAP=0.431.pth)")
        return PannsEmbedder(panns_checkpoint, device=device)
    members = []
    for part in name.split("+"):
        if part == "features":
            members.append(FeatureEmbedder())
        else:
            from curate.scoring.musicnn import WEIGHTS, MusicnnEmbedder

            members.append(MusicnnEmbedder(musicnn_weights or WEIGHTS, device=device))
    return members[0] if len(members) == 1 else ConcatEmbedder(members)
