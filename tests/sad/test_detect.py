import numpy as np
import pytest

from sad import SADConfig, detect, window_activity
from sad.reference import detect_loop

SR = 44100


def _gapped(rng, seconds, channels=2):
    n = int(seconds * SR)
    x = (rng.standard_normal((channels, n)) * rng.uniform(0.001, 0.4)).astype(np.float32)
    for _ in range(int(rng.integers(1, 6))):
        a = int(rng.integers(0, n))
        x[:, a : a + int(SR * rng.uniform(0.3, 5))] = 0.0
    x *= (0.2 + np.sin(np.linspace(0, rng.uniform(1, 20), n)) ** 2).astype(np.float32)
    return x


@pytest.mark.parametrize(
    "config", [SADConfig(), SADConfig(window_s=5.3, hop_s=2.5, n_chunks=7, quantile=0.3), SADConfig(hop_s=1.2)]
)
def test_parity_with_loop_reference(config):
    rng = np.random.default_rng(1)
    n_fragments = 0
    for _ in range(12):
        x = _gapped(rng, rng.uniform(2, 40), channels=int(rng.integers(1, 3)))
        fast, slow = detect(x, SR, config), detect_loop(x, SR, config)
        np.testing.assert_array_equal(fast, slow)
        n_fragments += len(fast)
    assert n_fragments > 10  # the comparison covered kept windows, not only empty results


def test_golden_fragments():
    # noise everywhere except [0, 4.2 s): window 0-6 s has 7 of 10 sub-chunks silent -> dropped;
    # 3-9 s has 2 silent -> kept; 6-12 s all active -> kept
    rng = np.random.default_rng(0)
    x = 0.1 * rng.standard_normal((2, 12 * SR)).astype(np.float32)
    x[:, : int(4.2 * SR)] = 0
    np.testing.assert_array_equal(detect(x, SR), [[3 * SR, 9 * SR], [6 * SR, 12 * SR]])


def test_every_channel_must_be_active():
    rng = np.random.default_rng(0)
    x = 0.1 * rng.standard_normal((2, 9 * SR)).astype(np.float32)
    assert len(detect(x, SR)) == 2
    x[1] = 0.0
    assert len(detect(x, SR)) == 0


def test_gamma_floor_rejects_quiet_noise():
    rng = np.random.default_rng(0)
    x = 1e-4 * rng.standard_normal((2, 6 * SR)).astype(np.float32)  # RMS 1e-4 < gamma 1e-3
    assert len(detect(x, SR)) == 0
    assert len(detect(x, SR, SADConfig(gamma=1e-5))) == 1


def test_short_and_mono_inputs():
    assert detect(np.ones(SR, np.float32), SR).shape == (0, 2)
    starts, active = window_activity(np.zeros((2, 7 * SR), np.float32), SR)
    assert starts.tolist() == [0] and active.tolist() == [False]
    rng = np.random.default_rng(0)
    mono = 0.1 * rng.standard_normal(7 * SR).astype(np.float32)
    np.testing.assert_array_equal(detect(mono, SR), detect(mono[None], SR))


def test_invalid_config():
    with pytest.raises(ValueError):
        SADConfig(window_s=0)
    with pytest.raises(ValueError):
        SADConfig(quantile=1.5)
