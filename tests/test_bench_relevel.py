"""bench.common.relevel: the re-mix that puts rendered stems at about equal loudness."""

import numpy as np
import soundfile as sf

from bench.common import active_power, relevel
from curate.data.datasets import DEFAULT_STEMS as STEMS

SR = 8000


def _track(tmp_path, levels_db):
    rng = np.random.default_rng(0)
    d = tmp_path / "train" / "Song"
    d.mkdir(parents=True)
    stems = {}
    for s, db in zip(STEMS, levels_db):
        x = rng.standard_normal((SR * 4, 2)) * 10 ** (db / 20)
        x[:SR] = 0.0  # one silent second: active power ignores it
        stems[s] = x
        sf.write(d / f"{s}.wav", x, SR, subtype="FLOAT")
    sf.write(d / "mixture.wav", sum(stems.values()), SR, subtype="FLOAT")
    return d


def test_active_power_ignores_silence():
    x = np.zeros((1, SR * 4))
    x[:, SR:] = 0.5
    assert abs(active_power(x, SR) - 0.25) < 1e-9
    assert active_power(np.zeros((2, SR)), SR) == 0.0


def test_relevel_equal_loudness_and_exact_sum(tmp_path):
    d = _track(tmp_path, (-40.0, -12.0, -20.0, -6.0))  # vocals 34 dB under "other"
    gains = relevel(d, seed=0, jitter_db=0.0)
    read = {s: sf.read(d / f"{s}.wav", dtype="int16", always_2d=True) for s in (*STEMS, "mixture")}
    assert all(sr == SR and x.dtype == np.int16 for x, sr in read.values())
    total = sum(read[s][0].astype(np.int64) for s in STEMS)
    np.testing.assert_array_equal(total, read["mixture"][0])  # the mixture is the exact sum of the stems
    powers = [active_power(read[s][0].T.astype(np.float64), SR) for s in STEMS]
    assert max(powers) / min(powers) < 10 ** (0.1 / 10)  # equal within 0.1 dB (16-bit rounding)
    peak = max(np.abs(x[0]).max() for x in read.values()) / 32767
    assert abs(20 * np.log10(peak) - (-1.0)) < 0.01
    assert gains["vocals"] - gains["other"] > 33.0  # the quiet stem was raised by the 34 dB it lacked, give or take


def test_relevel_jitter_is_bounded_and_seeded(tmp_path):
    d = _track(tmp_path, (-10.0, -10.0, -10.0, -10.0))
    g0 = relevel(d, seed=3, jitter_db=3.0)
    spread = max(g0.values()) - min(g0.values())
    assert 0.0 < spread <= 6.0 + 0.05
    d2 = _track(tmp_path / "again", (-10.0, -10.0, -10.0, -10.0))
    assert relevel(d2, seed=3, jitter_db=3.0) == g0
