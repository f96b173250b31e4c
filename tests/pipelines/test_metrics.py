"""uSDR and cSDR: golden values and parity with museval (BSSEval v4) on real and synthetic signals."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from pipelines.metrics import csdr, csdr_windows, usdr
from tests.conftest import MUSDBHQ_SAMPLE

museval = pytest.importorskip("museval")


def _museval(ref, est):
    sdr = museval.evaluate(ref, est)[0]
    return sdr, np.array([np.nanmedian(r) if not np.isnan(r).all() else np.nan for r in sdr])


def _check(ref, est):
    expected, expected_median = _museval(ref, est)
    got = csdr_windows(ref, est)
    assert got.shape == expected.shape
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    assert np.nanmax(np.abs(got - expected)) <= 0.01
    assert np.allclose(csdr(ref, est), expected_median, atol=0.01, equal_nan=True)


def test_parity_noise_and_filtered_estimates():
    rng = np.random.default_rng(0)
    n = 44100 * 4 + 1234  # a partial last window, dropped as museval drops it
    ref = 0.1 * rng.standard_normal((2, n, 2))
    est = np.stack(
        [
            ref[0] + 0.05 * rng.standard_normal((n, 2)),
            np.stack([np.convolve(ref[1, :, c], [0.6, 0.3, 0.1], "same") for c in range(2)], 1),
        ]
    )
    _check(ref, est)


def test_parity_silent_windows_and_shorter_estimates():
    rng = np.random.default_rng(1)
    n = 44100 * 4
    ref = 0.1 * rng.standard_normal((2, n, 2))
    ref[1, 44100:88200] = 0.0  # a silent reference window: NaN for both sources
    est = ref + 0.02 * rng.standard_normal(ref.shape)
    est[0, 3 * 44100 :] = 0.0  # a silent estimate window
    _check(ref, est[:, : n - 5000])  # estimates shorter: padded with zeros like museval


def test_parity_real_music():
    track = MUSDBHQ_SAMPLE / "train"
    files = sorted(track.glob("*/vocals.wav"))
    if not files:
        pytest.skip(f"no MUSDB18-HQ sample at {MUSDBHQ_SAMPLE}")
    folder = files[0].parent
    vocals, sr = sf.read(folder / "vocals.wav", frames=44100 * 4)
    bass, _ = sf.read(folder / "bass.wav", frames=44100 * 4)
    ref = np.stack([vocals, bass])
    est = np.stack([0.8 * vocals + 0.1 * bass, bass + 0.05 * vocals])
    _check(ref, est)


def test_usdr_golden_values():
    s = torch.randn(2, 2, 44100)
    assert torch.all(usdr(s, s) > 60) and torch.isfinite(usdr(s, s)).all()
    assert torch.allclose(usdr(s, torch.zeros_like(s)), torch.zeros(2), atol=1e-4)
    assert torch.allclose(usdr(s, 0.5 * s), torch.full((2,), 10 * np.log10(4.0)), atol=1e-4)  # error is s/2: 6.02 dB
    assert csdr_windows(np.ones((1, 100, 1)), np.ones((1, 100, 1)))[0, 0] == np.inf
