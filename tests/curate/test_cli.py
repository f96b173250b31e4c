"""Command-level behaviour: one-line errors with exit code 2, --strict, and the real entry points."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from curate.cli import app
from tests.conftest import noise_stems, write_track

runner = CliRunner()


def _assert_one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ") and "Traceback" not in result.output + result.stderr
    for f in fragments:
        assert f in err


def _data(tmp_path, names=("vocals", "bass", "drums", "other")):
    root = tmp_path / "data"
    write_track(root / "train" / "song", noise_stems(np.random.default_rng(0), names=names))
    return root


def test_missing_data_dir(tmp_path):
    missing = tmp_path / "nope"
    _assert_one_line_error(runner.invoke(app, ["scan", str(missing)]), str(missing), "does not exist")


def test_empty_data_dir(tmp_path):
    (tmp_path / "empty").mkdir()
    _assert_one_line_error(runner.invoke(app, ["scan", str(tmp_path / "empty")]), "empty")


def test_no_tracks_found(tmp_path):
    (tmp_path / "d" / "train" / "x").mkdir(parents=True)
    (tmp_path / "d" / "train" / "x" / "notes.txt").write_text("hi")
    _assert_one_line_error(runner.invoke(app, ["scan", str(tmp_path / "d")]), "no tracks found")


def test_unwritable_output(tmp_path):
    root = _data(tmp_path)
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    out = blocker / "m.parquet"  # parent is a file: cannot be created, even as root
    _assert_one_line_error(runner.invoke(app, ["scan", str(root), "-o", str(out)]), str(out))
    _assert_one_line_error(runner.invoke(app, ["scan", str(root), "-o", str(tmp_path)]), "is a folder")


def test_unknown_stem(tmp_path):
    root = _data(tmp_path)
    _assert_one_line_error(
        runner.invoke(app, ["scan", str(root), "--stems", "vocals,guitar"]), "unknown stem 'guitar'", str(root)
    )


def test_bad_sad_option(tmp_path):
    root = _data(tmp_path)
    _assert_one_line_error(runner.invoke(app, ["scan", str(root), "--sad-quantile", "2"]), "SAD options")


def test_truncated_and_silent_scan_to_the_end_and_strict_exits_2(tmp_path):
    root = _data(tmp_path)
    stems = noise_stems(np.random.default_rng(1))
    stems["drums"][:] = 0
    write_track(root / "train" / "quiet", stems)
    write_track(root / "train" / "cut", noise_stems(np.random.default_rng(2)))
    other = root / "train" / "cut" / "other.wav"
    with open(other, "r+b") as fh:
        fh.truncate(os.path.getsize(other) - 40000)
    out = tmp_path / "m.parquet"
    ok = runner.invoke(app, ["scan", str(root), "-o", str(out), "--embedder", "features"])
    assert ok.exit_code == 0 and "silent" in ok.stdout and "truncated" in ok.stdout
    problems = pd.read_parquet(tmp_path / "m.problems.parquet")
    assert sorted(map(tuple, problems[["track", "stem", "check"]].fillna("-").values)) == [
        ("cut", "-", "residual"),  # not measured, and the row says why
        ("cut", "other", "truncated"),
        ("quiet", "drums", "silent"),
    ]
    frags = pd.read_parquet(out)
    assert sorted(frags.track.unique()) == ["cut", "quiet", "song"]  # scanned to the end
    strict = runner.invoke(app, ["scan", str(root), "-o", str(out), "--strict", "--embedder", "features"])
    assert strict.exit_code == 2
    assert "--strict" in strict.stderr and "3 problem(s)" in strict.stderr
    assert len(pd.read_parquet(tmp_path / "m.problems.parquet")) == 3


def test_synth_then_scan_through_console_scripts(tmp_path):
    """The acceptance flow, through the installed entry points in a fresh process."""
    bindir = Path(sys.executable).parent
    curate = bindir / "curate"
    if not curate.exists():
        pytest.skip("console scripts not installed (pip install -e .)")
    env = {**os.environ, "COLUMNS": "120"}
    subprocess.run(
        [curate, "synth", tmp_path / "d", "--tracks", "4", "--seconds", "8", "--seed", "0"],
        check=True,
        env=env,
        capture_output=True,
    )
    res = subprocess.run(
        [curate, "scan", tmp_path / "d", "-o", tmp_path / "m.parquet"], env=env, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    df = pd.read_parquet(tmp_path / "m.parquet")
    for col in [
        "track",
        "subset",
        "stem",
        "path",
        "start",
        "end",
        "sample_rate",
        "channels",
        "rms_db",
        "quality",
        "label_score",
        "predicted_stem",
        "bleed_db",
        "reason",
    ]:
        assert col in df.columns
    assert set(df["stem"]) == {"vocals", "bass", "drums", "other"}
    bad = subprocess.run([curate, "scan", tmp_path / "missing"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_pipelines_env_runs():
    from pipelines.cli import app as papp

    r = runner.invoke(papp, ["env"])
    assert r.exit_code == 0 and "torch" in r.stdout


def test_interrupted_corrupt_says_nothing_was_written(synth_dir, tmp_path, monkeypatch):
    """An interrupt of `curate corrupt` removes its partial copy, and the message says so (other
    commands keep their finished work and resume)."""
    import curate.simulate.corrupt

    real_write = curate.simulate.corrupt.audio_io.write
    calls = []

    def write_then_interrupt(*args, **kwargs):
        real_write(*args, **kwargs)
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(curate.simulate.corrupt.audio_io, "write", write_then_interrupt)
    result = runner.invoke(app, ["corrupt", str(synth_dir), str(tmp_path / "out")])
    assert result.exit_code == 130
    assert "interrupted: nothing was written" in result.stderr
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


def test_names_with_brackets_print_literally(tmp_path):
    """Issue 20, case 6: console output read user strings as rich markup: 'track 0 [demo]' printed as
    'track 0', 'broken song [remastered].wav' as 'broken song .wav'. Names now print as they are."""
    from pipelines.cli import app as pipelines_app
    from tests.conftest import random_models

    rng = np.random.default_rng(0)
    stems = noise_stems(rng, seconds=7.0)
    stems["bass"] = np.zeros_like(stems["bass"])  # a silent stem: a problem row naming the track
    write_track(tmp_path / "d" / "train" / "track 0 [demo]", stems)
    res = runner.invoke(app, ["scan", str(tmp_path / "d"), "-o", str(tmp_path / "m.parquet"), "--no-score"])
    assert res.exit_code == 0, res.output
    assert "track 0 [demo]" in res.output
    songs = tmp_path / "songs"
    songs.mkdir()
    (songs / "broken song [remastered].wav").write_bytes(b"RIFF....WAVEjunk")
    import soundfile as sf

    sf.write(songs / "good song [live].wav", 0.1 * rng.standard_normal((44100, 2)), 44100)
    res = runner.invoke(
        pipelines_app,
        ["separate", "-i", str(songs), "-o", str(tmp_path / "sep"), "-c", str(random_models(tmp_path / "models"))],
    )
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "broken song [remastered].wav" in text and (tmp_path / "sep" / "good song [live]" / "vocals.wav").is_file()


def test_every_long_command_shows_progress_unless_told_not_to(tmp_path):
    """``--no-progress`` silences the bar of synth, scan, corrupt and repair (train, evaluate and separate:
    tests/pipelines); without it the bar is drawn on stderr."""
    from typer.testing import CliRunner

    runner = CliRunner()
    bar = "━"
    for quiet in (False, True):
        flag = ["--no-progress"] if quiet else []
        d = tmp_path / f"q{int(quiet)}"
        steps = [
            ["synth", str(d / "data"), "--tracks", "2", "--seconds", "8", *flag],
            ["corrupt", str(d / "data"), str(d / "noisy"), "--mislabel-rate", "0.5", *flag],
            ["scan", str(d / "noisy"), "-o", str(d / "m.parquet"), "--embedder", "features", *flag],
            ["repair", str(d / "m.parquet"), str(d / "fixed"), *flag],
        ]
        for args in steps:
            res = runner.invoke(app, args)
            assert res.exit_code == 0, (args, res.output)
            assert (f"{args[0]} {bar}" in res.output) is not quiet, (args, res.output)  # "scan ━━━ 2/2 ..."
