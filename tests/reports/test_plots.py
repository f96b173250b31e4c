"""reports/plots.py: every plot is a PNG that decodes, also for degenerate input."""

from __future__ import annotations

import base64

import numpy as np

from reports import plots


def test_plots_render_pngs_also_for_degenerate_input():
    uris = [
        plots.spectrogram(np.zeros(22050, np.float32), 22050),
        plots.histograms({"vocals": np.array([0.1, 0.5, 0.9]), "bass": np.array([])}, xlabel="q", marker=0.7),
        plots.confusion(["vocals", "bass"], ["vocals", "vocals"], ["bass", "vocals"]),
        plots.roc_pr(np.array([0, 1, 1, 0]), np.array([0.1, 0.8, 0.6, 0.3])),
        plots.curves({"loss": (np.arange(5), np.ones(5))}, xlabel="step", ylabel="loss"),
        plots.boxes({"vocals": np.array([1.0, np.nan, 3.0])}, ylabel="dB"),
    ]
    for uri in uris:
        assert uri.startswith("data:image/png;base64,")
        assert base64.b64decode(uri.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
