"""Curation of music source-separation datasets.

Laid out by role:

- :mod:`curate.data`: the dataset on disk: discovery of tracks and stems, audio reading, per-file
  checks, the Parquet manifest's schema (the contract with training);
- :mod:`curate.scoring`: the evidence per fragment: spectra, embedders (features, musicnn, PANNs),
  bleed, onset alignment, the label model, self-separation and the quality score;
- :mod:`curate.simulate`: demo data and label noise with ground truth (``curate synth``,
  ``curate corrupt``, :func:`curate.simulate.truth.manifest_truth`);
- :mod:`curate.common`: plumbing that every package uses: errors, atomic writes, output-path rules,
  the command-line guard;
- on top, the commands: :mod:`curate.scan` (with :mod:`curate.scantrack`, the resume store
  :mod:`curate.scanparts` and the reference pool :mod:`curate.reference`, which scans clean data
  into label-model units), :mod:`curate.filter`, :mod:`curate.repair`, :mod:`curate.export` (with
  :mod:`curate.exporttracks`, :mod:`curate.exportsplits` and :mod:`curate.exportlists`) and
  :mod:`curate.cli` (``curate export``'s in :mod:`curate.exportcli`).

Each sub-package imports only those listed before it (``tests/test_layout.py``).

``curate.datasets`` and ``curate.schema`` remain importable (the paths the README first showed).
"""

from pathlib import Path

__version__ = "0.1.0"

ASSETS = Path(__file__).resolve().parent / "assets"
"""Files shipped with the package: musicnn weights and licence, PANNs class labels, the reference pool."""
