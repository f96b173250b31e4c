"""curate/scoring/leak.py: the pairwise leak model's Wiener path is the true leak filter."""

import numpy as np

from tests.curate.scoring.test_bleed import _sums


def test_path_response_is_the_leak_filter():
    """The leak model's filter, read back from the summed spectra, is the filter the leak went through."""
    from curate.scoring.leak import BleedConfig, lag_window, path_response

    rng = np.random.default_rng(1)
    f, t, n_fft = 1025, 300, 2048
    src = rng.standard_normal((2, f, t)) + 1j * rng.standard_normal((2, f, t))
    taps = np.zeros(n_fft)
    taps[:4] = [0.5, 0.3, -0.2, 0.1]
    true = np.fft.rfft(taps)
    recv = src * true[None, :, None]
    g, p_r, p_s, _, _ = _sums(recv, src)
    resp = path_response(0, g, p_s, p_r, None, n_fft, 512, lag_window(n_fft), BleedConfig())
    assert np.max(np.abs(resp - true)) < 0.02
