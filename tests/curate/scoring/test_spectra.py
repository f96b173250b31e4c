"""curate/scoring/spectra.py: STFT sizes and framing, fragment frame bounds, segment sums, the mel filterbank."""

from __future__ import annotations

import numpy as np
import pytest

from curate.scoring.spectra import fft_size, frame_bounds, mel_filterbank, segment_sums, stft


@pytest.mark.parametrize("sr, n_fft", [(44100, 2048), (48000, 2048), (22050, 1024), (8000, 512), (96000, 4096)])
def test_fft_size_keeps_about_46_ms_frames(sr, n_fft):
    assert fft_size(sr) == (n_fft, n_fft // 4)


def test_stft_shape_centring_and_the_bin_of_a_sine():
    sr, n = 44100, 44100
    n_fft, hop = fft_size(sr)
    k = 100  # a sine exactly on bin 100
    t = np.arange(n) / sr
    x = np.stack([np.sin(2 * np.pi * k * sr / n_fft * t), np.zeros(n)]).astype(np.float32)
    spec = stft(x, sr)
    assert spec.spec.shape == (2, n_fft // 2 + 1, n // hop + 1) and spec.frames == n // hop + 1
    assert spec.freqs[k] == pytest.approx(k * sr / n_fft)
    power = spec.power()
    assert power.shape == (n_fft // 2 + 1, spec.frames)
    assert int(power[:, spec.frames // 2].argmax()) == k
    assert np.abs(spec.spec[1]).max() == 0  # the silent channel stays silent
    short = stft(np.ones((1, 10), np.float32), sr)  # shorter than half a window: padded, not an error
    assert short.frames >= 1


def test_frame_bounds_take_the_frames_whose_centre_is_inside():
    fb = frame_bounds(np.array([[0, 512], [513, 1024], [1000, 10**9]]), 512, 10)
    np.testing.assert_array_equal(fb, [[0, 1], [2, 2], [2, 10]])


def test_segment_sums_equal_brute_force_on_overlapping_ranges():
    rng = np.random.default_rng(0)
    values = rng.standard_normal((3, 200))
    a = rng.integers(0, 220, 50)
    b = a + rng.integers(0, 60, 50)
    fb = np.stack([a, b], 1)
    got = segment_sums(values, fb)
    want = np.stack([values[:, min(s, 200) : min(e, 200)].sum(axis=1) for s, e in fb], axis=1)
    np.testing.assert_allclose(got, want, atol=1e-9)
    assert segment_sums(values, np.zeros((0, 2), int)).shape == (3, 0)


def test_mel_filterbank_covers_every_band_with_unit_peaks_in_order():
    fb = mel_filterbank(40, 2048, 44100)
    assert fb.shape == (40, 1025) and fb.dtype == np.float32
    assert (fb.max(axis=1) > 0.5).all() and fb.max() <= 1.0 + 1e-6
    centres = fb.argmax(axis=1)
    assert (np.diff(centres) >= 0).all() and centres[-1] > centres[0]


def test_segment_sums_match_slicing_with_empty_and_whole_ranges():
    rng = np.random.default_rng(0)
    v = rng.standard_normal((3, 200))
    fb = np.array([[0, 10], [5, 120], [20, 20], [150, 200], [0, 200]])
    ref = np.stack([v[:, a:b].sum(axis=1) for a, b in fb], axis=1)
    np.testing.assert_allclose(segment_sums(v, fb), ref, atol=1e-12)
