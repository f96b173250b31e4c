"""`pipelines separate`, `pipelines evaluate` and the Separator API with a tiny model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from bsrnn.separator import Separator
from curate.common.errors import StemcurateError
from pipelines.cli import app
from tests.conftest import random_models

runner = CliRunner()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Random tiny vocals and bass models saved as exported checkpoints (saved_models layout)."""
    return random_models(tmp_path_factory.mktemp("models"))


def _error(res, *needles):
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in res.output, res.output
    for n in needles:
        assert n in lines[0], lines[0]


def test_api_dict_resampling_and_mono(models):
    sep = Separator.from_checkpoint([models / "vocals" / "vocals.ckpt", models / "bass" / "bass.ckpt"])
    assert sep.targets == ["vocals", "bass"] and sep.sample_rate == 44100
    out = sep(np.random.default_rng(0).standard_normal((2, 22050)).astype(np.float32) * 0.1, 22050)
    assert set(out) == {"vocals", "bass"} and out["vocals"].shape == (2, 44100)  # returned at the model's rate
    mono = sep(torch.randn(30000) * 0.1, 44100)
    assert mono["bass"].shape == (1, 30000)
    # dual mono: the mono result is the mean of the stereo separation of the duplicated signal
    x = torch.randn(1, 30000) * 0.1
    ref = sep.separate(x.repeat(2, 1)).mean(0, keepdim=True)
    assert torch.allclose(sep(x, 44100)["vocals"], ref, atol=1e-6)


def test_separate_wav_mp3_lengths_rates_and_a_bad_file(models, tmp_path):
    rng = np.random.default_rng(0)
    songs = tmp_path / "songs"
    (songs / "album").mkdir(parents=True)
    sf.write(songs / "a.wav", 0.1 * rng.standard_normal((44100 * 2 + 17, 2)), 44100)
    sf.write(songs / "album" / "b.mp3", 0.1 * rng.standard_normal((22050 * 3, 2)), 22050)
    sf.write(songs / "m.flac", 0.1 * rng.standard_normal(44100), 44100)  # mono
    (songs / "broken.wav").write_bytes(b"RIFF....WAVEjunk")
    out = tmp_path / "out"
    res = runner.invoke(
        app, ["separate", "-i", str(songs), "-o", str(out), "-c", str(models), "--residual", "--bits", "16"]
    )
    assert res.exit_code == 0, res.output
    assert "broken.wav" in res.output and "3 of 4 files" in res.output
    a = sf.info(out / "a" / "vocals.wav")
    assert (a.samplerate, a.frames, a.channels, a.subtype) == (44100, 44100 * 2 + 17, 2, "PCM_16")
    assert (out / "a" / "no_bass.wav").is_file()
    b = sf.read(out / "album" / "b" / "bass.wav")[0]
    mp3_len = sf.info(songs / "album" / "b.mp3").frames
    assert abs(b.shape[0] - mp3_len * 2) <= 2 and sf.info(out / "album" / "b" / "bass.wav").samplerate == 44100
    assert sf.info(out / "m" / "vocals.wav").channels == 1
    # mixture = target + residual
    mix = sf.read(songs / "a.wav", dtype="float32")[0]
    v, nv = sf.read(out / "a" / "vocals.wav")[0], sf.read(out / "a" / "no_vocals.wav")[0]
    assert np.abs(v + nv - mix).max() < 2e-4  # 16-bit rounding of two files

    res = runner.invoke(
        app,
        [
            "separate",
            "-i",
            str(songs / "a.wav"),
            "-o",
            str(tmp_path / "o2"),
            "-c",
            str(models / "bass" / "bass.ckpt"),
            "--format",
            "mp3",
        ],
    )
    assert res.exit_code == 0, res.output
    assert sf.info(tmp_path / "o2" / "a" / "bass.mp3").samplerate == 44100


def test_separate_bad_input(models, tmp_path):
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros((4410, 2)), 44100)
    out = tmp_path / "out"
    (out / "a").mkdir(parents=True)
    (out / "a" / "vocals.wav").write_bytes(b"keep me")
    (out / "a" / ".stemcurate-separation").write_text("an earlier separation")  # may be written again, not on errors
    _error(
        runner.invoke(
            app,
            ["separate", "-i", str(wav), "-o", str(out), "-t", "bass", "-c", str(models / "vocals" / "vocals.ckpt")],
        ),
        "vocals.ckpt",
        "'vocals' model",
    )
    _error(
        runner.invoke(app, ["separate", "-i", str(wav), "-o", str(out), "-c", str(tmp_path / "none.ckpt")]),
        "none.ckpt",
        "not found",
    )
    (tmp_path / "empty").mkdir()
    _error(
        runner.invoke(app, ["separate", "-i", str(tmp_path / "empty"), "-o", str(out), "-c", str(models)]),
        "empty",
        "no .wav",
    )
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    _error(
        runner.invoke(app, ["separate", "-i", str(wav), "-o", str(out), "-c", str(tmp_path / "junk.ckpt")]), "junk.ckpt"
    )
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"ID3 nothing")
    _error(
        runner.invoke(app, ["separate", "-i", str(bad), "-o", str(out), "-c", str(models)]),
        "no file could be separated",
    )
    assert (out / "a" / "vocals.wav").read_bytes() == b"keep me"


def test_evaluate_two_demo_tracks(models, synth_dir, tmp_path):
    out = tmp_path / "res" / "results.parquet"
    res = runner.invoke(
        app, ["evaluate", str(models), "--data", str(synth_dir), "--subset", "train", "--tracks", "2", "-o", str(out)]
    )
    assert res.exit_code == 0, res.output
    frame = pd.read_parquet(out)
    assert len(frame) == 4 and set(frame["target"]) == {"vocals", "bass"} and frame["track"].nunique() == 2
    assert np.isfinite(frame["usdr"]).all() and frame["windows"].gt(0).all()
    log = (out.parent / "test.log").read_text()
    assert "uSDR mean" in log and "vocals" in log
    _error(
        runner.invoke(app, ["evaluate", str(models), "--data", str(synth_dir), "--targets", "drums"]),
        "no model for drums",
    )
    _error(runner.invoke(app, ["evaluate", str(tmp_path / "nothing")]), "nothing")


def test_evaluate_matches_direct_computation(models, synth_dir):
    from curate.data.datasets import discover, load_source
    from pipelines.evaluate import evaluate

    sep = Separator.from_checkpoint(models / "vocals" / "vocals.ckpt")
    frame = evaluate(dict(sep.models), synth_dir, subset="test")
    track = discover(synth_dir, subset="test")[0]
    mix, ref = load_source(track.mixture)[0], load_source(track.stems["vocals"])[0]
    est = sep.separate(mix).numpy()
    expected = 10 * np.log10(np.square(ref.astype(np.float64)).sum() / np.square(ref.astype(np.float64) - est).sum())
    assert frame["usdr"].iloc[0] == pytest.approx(expected, abs=1e-3)


def test_output_folder_names():
    from pathlib import Path

    from pipelines.separate import output_folder

    out = Path("OUT")
    assert output_folder(Path("in/song.mp3"), Path("in"), out) == out / "song"
    assert output_folder(Path("in/album/song.flac"), Path("in"), out) == out / "album" / "song"
    assert (
        output_folder(Path("test/track1/mixture.wav"), Path("test/track1"), out) == out / "track1"
    )  # MUSDB18-HQ layout
    assert output_folder(Path("test/track1/mixture.wav"), Path("test"), out) == out / "track1"
    assert output_folder(Path("in/A Song.STEM.MP4"), Path("in"), out) == out / "A Song"  # the whole extension
    assert output_folder(Path("in/a/b.stem.mp4"), Path("in/a/b.stem.mp4"), out) == out / "b"


def test_separate_reads_the_mixture_stream_of_a_stem_mp4(models, tmp_path, monkeypatch):
    """A MUSDB18 ``.stem.mp4`` is separated from its mixture stream (stream 0, not the sum of the others or
    another stream): the stems equal those of the same samples written as WAV. Beside a ``.wav`` of the same
    name, each keeps its whole extension in its folder."""
    from tests.conftest import need_ffmpeg

    need_ffmpeg()
    import stempeg

    from curate.data import decoded

    monkeypatch.setenv(decoded.CACHE_ENV, str(tmp_path / "cache"))
    rng = np.random.default_rng(5)
    x = (0.05 * rng.standard_normal((5, 2 * 44100, 2))).astype(np.float32)
    x[0] = x[1:].sum(axis=0) * 0.5 + 0.1 * rng.standard_normal((2 * 44100, 2)).astype(np.float32)
    song = tmp_path / "in" / "song.stem.mp4"
    song.parent.mkdir()
    stempeg.write_stems(str(song), x, sample_rate=44100, writer=stempeg.StreamsWriter(codec="aac", bitrate=128000))
    mix, sr = decoded.read_stream(song, 0)
    sf.write(tmp_path / "in" / "song.wav", mix.T, sr, subtype="FLOAT")
    out = tmp_path / "sep"
    res = runner.invoke(app, ["separate", "-i", str(tmp_path / "in"), "-o", str(out), "-c", str(models)])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["song_stem_mp4", "song_wav"]
    for stem in ("vocals", "bass"):
        a, _ = sf.read(out / "song_stem_mp4" / f"{stem}.wav")
        b, _ = sf.read(out / "song_wav" / f"{stem}.wav")
        assert a.shape == (mix.shape[1], 2) and np.array_equal(a, b), stem


def test_evaluate_reads_musdb18_stem_mp4(models, tmp_path):
    from tests.conftest import MUSDB_SAMPLE, need_shared

    need_shared()
    out = tmp_path / "r.parquet"
    res = runner.invoke(
        app,
        [
            "evaluate",
            str(models / "bass" / "bass.ckpt"),
            "--data",
            str(MUSDB_SAMPLE),
            "--subset",
            "train",
            "-o",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    frame = pd.read_parquet(out)
    assert frame["track"].tolist() == ["Music Delta - 80s Rock"] and np.isfinite(frame["usdr"]).all()


def _eval(models, root, tmp_path):
    out = tmp_path / "r" / "results.parquet"
    res = runner.invoke(app, ["evaluate", str(models), "--data", str(root), "--subset", "test", "-o", str(out)])
    return res, out


def test_evaluate_named_tracks(models, tmp_path):
    """``--track NAME`` (repeatable) scores only those tracks of the subset (with ``-n``, the first N of
    them); a name the subset does not hold is a one-line error naming it, before any work."""
    from tests.conftest import noise_stems, write_track

    rng = np.random.default_rng(4)
    for name in ("alpha", "beta, the second", "gamma"):
        write_track(tmp_path / "d" / "test" / name, noise_stems(rng, seconds=2.0))
    out = tmp_path / "r.parquet"
    base = ["evaluate", str(models), "--data", str(tmp_path / "d"), "-o", str(out), "--no-progress"]
    res = runner.invoke(app, [*base, "--track", "gamma", "--track", "beta, the second"])
    assert res.exit_code == 0, res.output
    assert sorted(set(pd.read_parquet(out)["track"])) == ["beta, the second", "gamma"]
    res = runner.invoke(app, [*base, "--track", "gamma", "--track", "alpha", "-n", "1"])
    assert res.exit_code == 0 and sorted(set(pd.read_parquet(out)["track"])) == ["alpha"], res.output
    out.unlink()
    res = runner.invoke(app, [*base, "--track", "gamma", "--track", "delta"])
    lines = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert res.exit_code == 2 and len(lines) == 1 and "no track named 'delta' (" in lines[0], res.output
    assert not out.exists()


def test_evaluate_mono_tracks_and_a_mono_stem(models, tmp_path):
    """Issue 20, case 1: a test track of mono files, and one whose vocals.wav alone is mono, are
    scored in mono (the estimate averaged over channels) instead of a traceback."""
    from tests.conftest import noise_stems, write_track

    rng = np.random.default_rng(3)
    stems = noise_stems(rng, seconds=3.0)
    write_track(tmp_path / "d" / "test" / "all mono", {k: v[:1] for k, v in stems.items()})
    write_track(tmp_path / "d" / "test" / "mono vocals", dict(stems, vocals=stems["vocals"][:1]))
    res, out = _eval(models, tmp_path / "d", tmp_path)
    assert res.exit_code == 0, res.output
    frame = pd.read_parquet(out)
    assert len(frame) == 4 and np.isfinite(frame["usdr"]).all() and np.isfinite(frame["csdr"]).all()


def test_evaluate_leaves_out_a_silent_reference_and_says_so(models, tmp_path):
    """Issue 20, case 2: an instrumental track (all-zero vocals.wav) has no vocals uSDR or cSDR; it is
    left out of the summary (it read -108 dB and halved the mean), the log says so, and the bass of the
    same track is still scored."""
    from tests.conftest import noise_stems, write_track

    rng = np.random.default_rng(4)
    write_track(tmp_path / "d" / "test" / "song", noise_stems(rng, seconds=3.0))
    write_track(
        tmp_path / "d" / "test" / "instrumental",
        dict(noise_stems(rng, seconds=3.0), vocals=np.zeros((2, 3 * 44100), np.float32)),
    )
    res, out = _eval(models, tmp_path / "d", tmp_path)
    assert res.exit_code == 0, res.output
    frame = pd.read_parquet(out).set_index(["track", "target"])
    assert np.isnan(frame.loc[("instrumental", "vocals"), "usdr"]) and frame.loc[("instrumental", "vocals"), "silent"]
    assert np.isfinite(frame.loc[("instrumental", "bass"), ["usdr", "csdr"]].astype(float)).all()
    vocals_mean = float(frame.loc[("song", "vocals"), "usdr"])
    assert f"vocals          1{vocals_mean:>12.2f}" in res.output
    assert "vocals: 1 track(s) left out, silent reference (instrumental)" in (out.parent / "test.log").read_text()


def test_evaluate_without_mixture_reads_stems_up_to_the_shortest(models, tmp_path):
    """Issue 20, case 4: no mixture.wav and a drums.wav 1000 samples longer: read up to the shortest
    (it crashed on a broadcast); lengths further apart than a second are a one-line error naming the track."""
    from tests.conftest import noise_stems, write_track

    rng = np.random.default_rng(5)
    stems = noise_stems(rng, seconds=3.0)
    write_track(
        tmp_path / "d" / "test" / "t",
        dict(stems, drums=np.pad(stems["drums"], ((0, 0), (0, 1000)))),
        with_mixture=False,
    )
    res, out = _eval(models, tmp_path / "d", tmp_path)
    assert res.exit_code == 0, res.output
    assert np.isfinite(pd.read_parquet(out)["usdr"]).all()
    before = out.read_bytes()
    write_track(
        tmp_path / "e" / "test" / "far apart",
        dict(stems, drums=np.pad(stems["drums"], ((0, 0), (0, 2 * 44100)))),
        with_mixture=False,
    )
    res, out = _eval(models, tmp_path / "e", tmp_path)
    _error(res, "far apart", "differ in length by 2.00 s")
    assert out.read_bytes() == before  # the earlier results are untouched


def test_evaluate_six_channel_stem_keeps_its_first_two(models, tmp_path):
    """Issue 20, case 3 (evaluate): a 6-channel other.wav is read as its front left and right."""
    from tests.conftest import noise_stems, write_track

    rng = np.random.default_rng(6)
    stems = noise_stems(rng, seconds=3.0)
    write_track(
        tmp_path / "d" / "test" / "surround",
        dict(stems, other=np.concatenate([stems["other"]] * 3)),
        with_mixture=False,
    )
    res, out = _eval(models, tmp_path / "d", tmp_path)
    assert res.exit_code == 0, res.output
    assert np.isfinite(pd.read_parquet(out)["usdr"]).all()


def test_separate_refuses_nan_input_and_writes_nothing(models, tmp_path):
    """Issue 20, case 10: a float song with NaN frames was separated into 71 % NaN output; it is now
    skipped, named, with the count of bad samples."""
    rng = np.random.default_rng(1)
    x = (0.1 * rng.standard_normal((44100 * 3, 2))).astype(np.float32)
    x[2 * 44100 : 2 * 44100 + 10] = np.nan
    song = tmp_path / "in" / "nan song.wav"
    song.parent.mkdir()
    sf.write(song, x, 44100, subtype="FLOAT")
    out = tmp_path / "out"
    res = runner.invoke(app, ["separate", "-i", str(song), "-o", str(out), "-c", str(models)])
    _error(res, "no file could be separated")
    assert "nan song.wav: 20 NaN/inf samples" in " ".join(res.output.split()) and not out.exists()


def test_separate_two_inputs_with_one_name_keep_both(models, tmp_path):
    """Issue 20, case 11: in/demo.wav and in/demo.mp3 wrote one folder, the second overwrote the first,
    and the count said 2 of 2. Each now gets its own folder and the output says so."""
    rng = np.random.default_rng(2)
    songs = tmp_path / "in"
    songs.mkdir()
    sf.write(songs / "demo.wav", 0.1 * rng.standard_normal((44100 * 2, 2)), 44100)
    sf.write(songs / "demo.mp3", 0.1 * rng.standard_normal((44100 * 2, 2)), 44100)
    out = tmp_path / "sep"
    res = runner.invoke(app, ["separate", "-i", str(songs), "-o", str(out), "-c", str(models)])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "2 of 2 files separated" in text and "4 files in" in text and "another input has the same name" in text
    a, b = sf.read(out / "demo_wav" / "vocals.wav")[0], sf.read(out / "demo_mp3" / "vocals.wav")[0]
    assert a.shape[1] == b.shape[1] == 2 and not np.allclose(a[: len(b)], b[: len(a)])
    assert sorted(p.name for p in out.iterdir()) == ["demo_mp3", "demo_wav"]


def test_clip_mode_rescale_clamp_none(tmp_path):
    """Issue 20, case 12: output above full scale was written as is (16 bits saturated silently). With
    a stand-in model that doubles its input: rescale keeps the waveform's shape below full scale,
    clamp cuts it, none leaves float samples above 1; each is reported."""
    from pipelines.separate import separate_files

    class Loud:
        sample_rate, targets, channels = 44100, ["vocals"], 2

        def __call__(self, audio, sr):
            return {"vocals": torch.from_numpy(2.0 * audio)}

    song = tmp_path / "loud.wav"
    x = np.tile(np.array([[0.9, -0.9], [0.3, -0.3]], np.float32), (1000, 1))
    sf.write(song, x, 44100, subtype="FLOAT")
    got = {}
    for mode in ("rescale", "clamp", "none"):
        rep = separate_files([song], tmp_path / mode, Loud(), clip_mode=mode)
        got[mode] = sf.read(tmp_path / mode / "loud" / "vocals.wav", dtype="float32")[0]
        assert rep.separated == 1 and len(rep.clipped) == 1 and rep.clipped[0][2] == pytest.approx(1.8)
    assert np.abs(got["rescale"]).max() < 1 and np.allclose(got["rescale"], 2 * x / (1.01 * 1.8), atol=1e-6)
    assert np.abs(got["clamp"]).max() == 1.0 and np.allclose(got["clamp"][1], [0.6, -0.6])
    assert np.abs(got["none"]).max() == pytest.approx(1.8)
    with pytest.raises(StemcurateError, match="--clip-mode"):
        separate_files([song], tmp_path / "x", Loud(), clip_mode="soft")


def test_evaluate_and_separate_progress_and_no_progress(models, synth_dir, tmp_path):
    song = next((synth_dir / "test").iterdir()) / "mixture.wav"
    for quiet in (False, True):
        flag = ["--no-progress"] if quiet else []
        ev = ["evaluate", str(models), "--data", str(synth_dir), "-n", "1", "-o", str(tmp_path / f"r{quiet}.parquet")]
        sep = ["separate", "-i", str(song), "-o", str(tmp_path / f"s{quiet}"), "-c", str(models)]
        for name, args in (("evaluate", ev), ("separate", sep)):
            res = runner.invoke(app, args + flag)
            assert res.exit_code == 0, res.output
            assert (f"{name} ━" in res.output) is not quiet, res.output


def test_inputs_are_found_through_linked_folders_and_a_loop_ends(tmp_path):
    """A linked album folder is read (as curate scan reads linked track folders); a link back to a folder
    above is not followed again."""
    import soundfile as sf

    from pipelines.separate import find_inputs

    album = tmp_path / "elsewhere" / "album"
    album.mkdir(parents=True)
    for name in ("a.wav", "b.flac"):
        sf.write(album / name, np.zeros((100, 2)), 44100)
    music = tmp_path / "music"
    music.mkdir()
    sf.write(music / "c.wav", np.zeros((100, 2)), 44100)
    (music / "linked").symlink_to(album, target_is_directory=True)
    (album / "loop").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    found = [p.relative_to(music).as_posix() for p in find_inputs(music)]
    assert found == ["c.wav", "linked/a.wav", "linked/b.flac"], found
