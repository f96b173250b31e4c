"""Fragment embedders for the classifier, chosen with ``curate scan --embedder NAME``.

* ``features`` (default): hand-made descriptors (:mod:`curate.features`), no weights needed.
* ``panns``: PANNs Cnn14 embeddings and AudioSet scores (:mod:`curate.panns`), from a checkpoint
  file the user downloaded (``--panns-checkpoint``).
"""

from __future__ import annotations

import functools

import numpy as np

from curate.errors import StemcurateError
from curate.features import fragment_features
from curate.spectra import StemSpectrum

EMBEDDERS = ("features", "panns")


class FeatureEmbedder:
    """Hand-made descriptors per fragment (see :mod:`curate.features`)."""

    name = "features"

    def embed(self, audio: np.ndarray, spectrum: StemSpectrum, bounds: np.ndarray) -> np.ndarray:
        """``(n, d)`` float32 for the fragments ``bounds`` ``(n, 2)`` of one stem ``audio`` ``(channels, samples)``."""
        return fragment_features(spectrum, bounds)


@functools.lru_cache(maxsize=2)
def make_embedder(name: str, panns_checkpoint: str | None = None, device: str = "cpu"):
    """The embedder called ``name`` (cached per process, so a model loads once)."""
    if name == "features":
        return FeatureEmbedder()
    if name == "panns":
        from curate.panns import PannsEmbedder

        if not panns_checkpoint:
            raise StemcurateError("--embedder panns needs --panns-checkpoint PATH (Cnn14_mAP=0.431.pth)")
        return PannsEmbedder(panns_checkpoint, device=device)
    raise StemcurateError(f"unknown embedder '{name}' (use {' or '.join(EMBEDDERS)})")
