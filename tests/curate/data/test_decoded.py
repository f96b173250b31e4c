"""curate/data/decoded.py: a .stem.mp4 is decoded once, reads from the cache are the decoder's own samples,
and an interrupted or unwritable cache never gives wrong audio."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from curate.common.errors import StemcurateError
from curate.data import decoded
from curate.data.datasets import discover, load_segment
from tests.conftest import need_ffmpeg


@pytest.fixture
def stem_mp4(tmp_path, monkeypatch):
    """A 2-s, five-stream MUSDB18-style file under ``tmp_path/data/train``, and a private cache folder."""
    need_ffmpeg()
    import stempeg

    monkeypatch.setenv(decoded.CACHE_ENV, str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal((5, 2 * 44100, 2))).astype(np.float32)
    path = tmp_path / "data" / "train" / "song.stem.mp4"
    path.parent.mkdir(parents=True)
    stempeg.write_stems(str(path), x, sample_rate=44100, writer=stempeg.StreamsWriter(codec="aac", bitrate=128000))
    return path


def test_cached_reads_are_the_decoders_samples_and_decode_once(stem_mp4, monkeypatch):
    direct = [decoded._decode(str(stem_mp4), s)[0] for s in range(5)]
    first, sr = decoded.read_stream(stem_mp4, 4, 1000, 5000)
    assert sr == 44100 and np.array_equal(first, direct[4][:, 1000:5000])
    root, entries, size = decoded.usage()
    assert entries == 1 and size > 5 * 2 * 88000 * 4  # five float32 stereo streams

    def no_decoding(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(decoded, "_decode_stream", no_decoding)
    monkeypatch.setattr(decoded, "_decode", no_decoding)
    for s in range(5):
        assert np.array_equal(decoded.read_stream(stem_mp4, s)[0], direct[s])
    # ranges past the end read like slices
    n = direct[0].shape[1]
    assert decoded.read_stream(stem_mp4, 0, n - 10, n + 100)[0].shape == (2, 10)
    assert decoded.read_stream(stem_mp4, 0, n + 5)[0].shape == (2, 0)
    with pytest.raises(StemcurateError, match="no stream 7"):
        decoded.read_stream(stem_mp4, 7)


def test_the_dataset_readers_go_through_the_cache(stem_mp4):
    (track,) = discover(stem_mp4.parents[1])
    vocals, _ = track.load("vocals")
    part, _ = load_segment(stem_mp4.parents[1], "train/song.stem.mp4", "vocals", 100, 300)
    assert np.array_equal(part, vocals[:, 100:300])
    assert decoded.usage()[1] == 1


def test_a_changed_file_gets_a_new_entry(stem_mp4):
    old = decoded.entry_for(stem_mp4)
    decoded.read_stream(stem_mp4, 0)
    st = stem_mp4.stat()
    os.utime(stem_mp4, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert decoded.entry_for(stem_mp4) != old
    decoded.read_stream(stem_mp4, 0)
    assert decoded.usage()[1] == 2
    assert decoded.clear() > 0 and decoded.usage()[1] == 0


def test_an_interrupted_decode_leaves_no_entry(stem_mp4, monkeypatch):
    calls = []

    def failing_write(path, *a, **k):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return sf.write(path, *a, **k)

    monkeypatch.setattr(decoded.sf, "write", failing_write)
    with pytest.raises(KeyboardInterrupt):
        decoded.read_stream(stem_mp4, 0)
    cache = decoded.cache_root()
    assert not decoded.entry_for(stem_mp4).exists() and not list(cache.iterdir())
    monkeypatch.undo()
    monkeypatch.setenv(decoded.CACHE_ENV, str(cache))
    assert np.array_equal(decoded.read_stream(stem_mp4, 2)[0], decoded._decode(str(stem_mp4), 2)[0])


def test_off_and_an_unwritable_cache_decode_on_every_read(stem_mp4, tmp_path, monkeypatch, capsys):
    want = decoded._decode(str(stem_mp4), 1)[0][:, 10:20]
    monkeypatch.setenv(decoded.CACHE_ENV, "off")
    assert decoded.cache_root() is None and decoded.entry_for(stem_mp4) is None
    assert np.array_equal(decoded.read_stream(stem_mp4, 1, 10, 20)[0], want)
    blocker = tmp_path / "a file"
    blocker.write_text("x")
    monkeypatch.setenv(decoded.CACHE_ENV, str(blocker / "cache"))  # below a file: cannot be created
    assert np.array_equal(decoded.read_stream(stem_mp4, 1, 10, 20)[0], want)
    assert "cannot write the decode cache" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()


def test_default_location_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv(decoded.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert decoded.cache_root() == tmp_path / "stemcurate" / "decoded"


def test_a_file_that_does_not_decode_is_named(tmp_path, monkeypatch):
    need_ffmpeg()
    monkeypatch.setenv(decoded.CACHE_ENV, str(tmp_path / "cache"))
    bad = tmp_path / "bad.stem.mp4"
    bad.write_bytes(b"not an mp4 at all" * 100)
    with pytest.raises(StemcurateError, match="bad.stem.mp4: cannot decode"):
        decoded.read_stream(bad, 0)
    assert decoded.usage()[1] == 0


def test_a_damaged_entry_is_decoded_again(stem_mp4):
    want = [decoded._decode(str(stem_mp4), s)[0] for s in (0, 3)]
    decoded.read_stream(stem_mp4, 0)
    entry = decoded.entry_for(stem_mp4)
    damage = [
        lambda: (entry / "3.wav").unlink(),  # a stream file gone
        lambda: (entry / "0.wav").write_bytes((entry / "0.wav").read_bytes()[:5000]),  # truncated
        lambda: (entry / decoded.INFO).write_text("{not json"),
        lambda: (entry / "0.wav").write_bytes(b"garbage" * 100),
    ]
    for hurt in damage:
        hurt()
        assert np.array_equal(decoded.read_stream(stem_mp4, 0)[0], want[0])
        assert np.array_equal(decoded.read_stream(stem_mp4, 3)[0], want[1])
    assert decoded.usage()[1] == 1


def _mux(path, streams):
    """A .stem.mp4 of ``streams`` = [(rate, seconds)], each stream AAC-coded from its own noise WAV (ffmpeg)."""
    import subprocess

    rng = np.random.default_rng(5)
    inputs = []
    for k, (rate, seconds) in enumerate(streams):
        wav = path.parent / f"s{k}.wav"
        sf.write(wav, 0.1 * rng.standard_normal((int(rate * seconds), 2)), rate)
        inputs += ["-i", str(wav)]
    maps = [arg for k in range(len(streams)) for arg in ("-map", str(k))]
    cmd = ["ffmpeg", "-v", "error", "-y", *inputs, *maps, "-c:a", "aac", "-b:a", "128k", "-f", "mp4", str(path)]
    subprocess.run(cmd, check=True)
    for k in range(len(streams)):
        (path.parent / f"s{k}.wav").unlink()


def test_both_read_paths_agree_and_each_stream_keeps_its_own_rate(tmp_path, monkeypatch):
    """Streams of other lengths and rates than the mixture's (a 48-kHz mixture, 44.1-kHz stems, one stem
    shorter): through the cache and without it, the same samples at each stream's own rate, and the same
    samples as stempeg gives for each stream read alone at its rate."""
    need_ffmpeg()
    import stempeg

    path = tmp_path / "odd.stem.mp4"
    _mux(path, [(48000, 2.0), (44100, 2.0), (44100, 1.5), (44100, 2.0), (44100, 2.0)])
    monkeypatch.setenv(decoded.CACHE_ENV, str(tmp_path / "cache"))
    cached = [decoded.read_stream(path, k) for k in range(5)]
    monkeypatch.setenv(decoded.CACHE_ENV, decoded.OFF)
    decoded._decode.cache_clear()
    direct = [decoded.read_stream(path, k) for k in range(5)]
    assert [sr for _, sr in cached] == [sr for _, sr in direct] == [48000, 44100, 44100, 44100, 44100]
    for (a, _), (b, _) in zip(cached, direct):
        assert np.array_equal(a, b)
    assert abs(cached[2][0].shape[1] - int(1.5 * 44100)) < 2048 < abs(cached[1][0].shape[1] - int(1.5 * 44100))
    ref, sr = stempeg.read_stems(str(path), stem_id=1, sample_rate=44100, dtype=np.float32)
    assert sr == 44100 and np.array_equal(np.asarray(ref, np.float32).T, cached[1][0])


@pytest.mark.parametrize("damage", ["garbage", "empty", "truncated"])
def test_a_damaged_stem_mp4_is_named_with_what_is_wrong_on_both_read_paths(tmp_path, monkeypatch, damage):
    need_ffmpeg()
    good = tmp_path / "good.stem.mp4"
    _mux(good, [(44100, 1.0)] * 5)
    path = tmp_path / f"{damage}.stem.mp4"
    data = good.read_bytes()
    path.write_bytes(
        {"garbage": b"not an mp4 file at all" * 50, "empty": b"", "truncated": data[: len(data) // 2]}[damage]
    )
    verdicts = []
    for cache in (str(tmp_path / "cache"), decoded.OFF):
        monkeypatch.setenv(decoded.CACHE_ENV, cache)
        decoded._decode.cache_clear()
        with pytest.raises(StemcurateError) as err:
            decoded.read_stream(path, 1)
        verdicts.append(str(err.value))
    assert verdicts[0] == verdicts[1], verdicts  # one decoder, one verdict
    msg = verdicts[0]
    assert msg.startswith(f"{path}: cannot decode") and "\n" not in msg and "see ffprobe" not in msg, msg
    assert "warning" not in msg and msg.rstrip(")").split("(")[-1].strip(), msg  # a reason inside the brackets


def test_an_upper_case_stem_mp4_is_a_musdb18_track(stem_mp4):
    """``Song.STEM.MP4`` (a Windows or camera-style name) is read like ``song.stem.mp4``."""
    upper = stem_mp4.with_name("Song.STEM.MP4")
    stem_mp4.rename(upper)
    (track,) = discover(upper.parents[1])
    assert track.name == "Song" and track.is_stem_mp4
    vocals, sr = track.load("vocals")
    part, _ = load_segment(upper.parents[1], "train/Song.STEM.MP4", "vocals", 100, 300)
    assert sr == 44100 and np.array_equal(part, vocals[:, 100:300])
