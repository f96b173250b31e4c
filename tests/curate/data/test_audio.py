"""curate/data/audio.py: round trips, partial reads, header checks and errors naming the file."""

from __future__ import annotations

import numpy as np
import pytest

from curate.common.errors import StemcurateError
from curate.data import audio

SR = 44100


def _noise(channels=2, n=SR // 2, seed=0):
    return (np.random.default_rng(seed).standard_normal((channels, n)) * 0.2).astype(np.float32)


@pytest.mark.parametrize(
    "name, subtype, tol", [("x.wav", "FLOAT", 0.0), ("x.wav", "PCM_16", 1 / 2**15), ("x.flac", "PCM_24", 1 / 2**23)]
)
def test_write_read_round_trip_and_partial_reads(tmp_path, name, subtype, tol):
    x = np.clip(_noise(), -1, 1)
    path = audio.write(tmp_path / name, x, SR, subtype=subtype)
    y, sr = audio.read(path)
    assert sr == SR and y.shape == x.shape and y.dtype == np.float32
    assert np.abs(y - x).max() <= tol
    part, _ = audio.read(path, 1000, 3000)
    np.testing.assert_array_equal(part, y[:, 1000:3000])
    i = audio.info(path)
    assert (i.sample_rate, i.channels, i.frames) == (SR, 2, x.shape[1])


def test_wav_declared_frames_tells_a_truncated_file(tmp_path):
    path = audio.write(tmp_path / "x.wav", _noise(), SR, subtype="PCM_16")
    assert audio.wav_declared_frames(path) == SR // 2
    data = path.read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    declared = audio.wav_declared_frames(tmp_path / "cut.wav")
    decoded = audio.read(tmp_path / "cut.wav")[0].shape[1]
    assert declared == SR // 2 and decoded < declared  # libsndfile reads what is there, the header says more
    assert audio.wav_declared_frames(tmp_path / "none.wav") is None
    audio.write(tmp_path / "x.flac", _noise(), SR)
    assert audio.wav_declared_frames(tmp_path / "x.flac") is None


def test_errors_name_the_file_and_a_failed_write_keeps_the_earlier_file(tmp_path):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"not audio at all" * 10)
    with pytest.raises(StemcurateError, match="garbage.wav: cannot decode"):
        audio.read(garbage)
    with pytest.raises(StemcurateError, match="garbage.wav: cannot open"):
        audio.info(garbage)
    with pytest.raises(StemcurateError, match="x.ogg: unsupported audio extension"):
        audio.write(tmp_path / "x.ogg", _noise(), SR)
    path = audio.write(tmp_path / "keep.wav", _noise(seed=1), SR, subtype="FLOAT")
    before = path.read_bytes()
    with pytest.raises(StemcurateError, match="keep.wav: cannot write"):
        audio.write(path, _noise(), SR, subtype="PCM_S8")  # WAV takes no signed 8-bit: libsndfile refuses
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["garbage.wav", "keep.wav"]
