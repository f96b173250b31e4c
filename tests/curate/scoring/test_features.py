"""curate/scoring/features.py: descriptors that tell sources apart and ignore the level."""

from __future__ import annotations

import numpy as np

from curate.scoring.features import FEATURE_NAMES, fragment_features
from curate.scoring.spectra import stft

SR = 22050


def _features(x):
    return dict(zip(FEATURE_NAMES, fragment_features(stft(x, SR), np.array([[0, x.shape[1]]]))[0]))


def _sig(kind, seconds=2.0, seed=0):
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    if kind == "bass":  # a harmonic 55 Hz tone
        x = sum(np.sin(2 * np.pi * 55 * h * t) / h for h in range(1, 6))
    elif kind == "noise":
        x = rng.standard_normal(t.size)
    else:  # clicks: a drum-like train of short bursts
        x = np.zeros(t.size)
        for s in range(0, t.size - 500, SR // 4):
            x[s : s + 500] = rng.standard_normal(500) * np.exp(-np.arange(500) / 80)
    x = 0.3 * x / np.abs(x).max()
    return np.stack([x, x]).astype(np.float32)


def test_shape_and_finite_values():
    f = fragment_features(stft(_sig("noise"), SR), np.array([[0, SR], [SR // 2, 2 * SR], [0, 10]]))
    assert f.shape == (3, len(FEATURE_NAMES)) and f.dtype == np.float32 and np.isfinite(f).all()
    assert fragment_features(stft(_sig("noise"), SR), np.zeros((0, 2), int)).shape == (0, len(FEATURE_NAMES))


def test_no_descriptor_depends_on_the_level():
    x = _sig("bass") + 0.05 * _sig("noise")
    bounds = np.array([[0, x.shape[1]]])
    loud, quiet = fragment_features(stft(x, SR), bounds), fragment_features(stft(0.1 * x, SR), bounds)  # 20 dB apart
    np.testing.assert_allclose(quiet, loud, rtol=2e-2, atol=1e-3)


def test_descriptors_tell_a_bass_tone_noise_and_clicks_apart():
    bass, noise, clicks = _features(_sig("bass")), _features(_sig("noise")), _features(_sig("clicks"))
    assert bass["share_lt120"] > 0.5 > noise["share_lt120"]
    assert bass["harmonicity_mean"] > noise["harmonicity_mean"]
    assert noise["flatness_mean"] > bass["flatness_mean"]
    assert clicks["onset_rate"] > bass["onset_rate"]
    assert bass["width"] < 1e-3 and bass["ch_corr"] > 0.99  # identical channels: no width, full correlation
