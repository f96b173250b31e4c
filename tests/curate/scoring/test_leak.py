"""curate/scoring/leak.py: the pairwise leak model's Wiener path is the true leak filter."""

import numpy as np

from tests.conftest import spectra_sums


def test_path_response_is_the_leak_filter():
    """The leak model's filter, read back from the summed spectra, is the filter the leak went through."""
    from curate.scoring.bleed import BleedConfig
    from curate.scoring.leak import hann_lag_window, path_response

    rng = np.random.default_rng(1)
    f, t, n_fft = 1025, 300, 2048
    src = rng.standard_normal((2, f, t)) + 1j * rng.standard_normal((2, f, t))
    taps = np.zeros(n_fft)
    taps[:4] = [0.5, 0.3, -0.2, 0.1]
    true = np.fft.rfft(taps)
    recv = src * true[None, :, None]
    g, p_r, p_s, _, _ = spectra_sums(recv, src)
    resp = path_response(0, g, p_s, p_r, None, n_fft, 512, hann_lag_window(n_fft), BleedConfig())
    assert np.max(np.abs(resp - true)) < 0.02


def test_leak_fraction_makes_its_own_lag_window():
    """Without ``lag_window`` it uses the Hann window's own (a parameter once shadowed the function)."""
    from curate.scoring.bleed import BleedConfig
    from curate.scoring.leak import hann_lag_window, leak_fraction

    rng = np.random.default_rng(2)
    f, t, n_fft = 1025, 200, 2048
    src = rng.standard_normal((2, f, t)) + 1j * rng.standard_normal((2, f, t))
    recv = 0.5 * src * np.exp(-2j * np.pi * np.arange(f) * 40 / n_fft)[None, :, None] + 0.3 * (
        rng.standard_normal((2, f, t)) + 1j * rng.standard_normal((2, f, t))
    )
    g, p_r, p_s, _, _ = spectra_sums(recv, src)
    cfg = BleedConfig(cross_validate=False, late_frames=False)
    own = leak_fraction(g, p_s, p_r, n_fft, 44100, cfg)
    given = leak_fraction(g, p_s, p_r, n_fft, 44100, cfg, hann_lag_window(n_fft))
    assert own == given and own[0] > 0.3 and own[1] == 40
