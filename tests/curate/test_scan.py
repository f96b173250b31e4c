import os

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from curate.common.errors import StemcurateError
from curate.data.checks import CheckConfig, residual_db
from curate.data.schema import MANIFEST_SCHEMA, read_manifest
from curate.scan import scan
from curate.scantrack import ScoreConfig
from tests.conftest import MUSDB_SAMPLE, MUSDBHQ_SAMPLE, need_shared, noise_stems, write_track

# tests of checks and resuming, where the embedder does not matter, use the fast descriptors
FAST = ScoreConfig(embedder="features")

SR = 44100


def _dataset(tmp_path, n_tracks=2, seconds=7.0, seed=0):
    rng = np.random.default_rng(seed)
    root = tmp_path / "data"
    for i in range(n_tracks):
        write_track(root / "train" / f"song{i}", noise_stems(rng, seconds))
    return root


def _problems(result, check):
    return result.problems[result.problems["check"] == check]


def test_scan_synth_dataset_writes_full_manifest(synth_dir, tmp_path):
    result = scan(synth_dir, output=tmp_path / "m.parquet", txt_dir=tmp_path / "txt")
    df = pd.read_parquet(tmp_path / "m.parquet")
    assert list(df.columns) == MANIFEST_SCHEMA.names
    assert set(df["stem"]) == {"vocals", "bass", "drums", "other"}
    assert (df["end"] - df["start"] == 6 * SR).all()
    assert (df["path"] == "train/" + df["track"] + "/" + df["stem"] + ".wav").all()
    assert len(result.problems) == 0
    assert all(v == float("-inf") for v in result.residual_db.values())  # exact sums
    lines = (tmp_path / "txt" / "vocals_train.txt").read_text().splitlines()
    voc = df[df["stem"] == "vocals"]
    assert lines == [f"{r.track}\t{r.start}\t{r.end}" for r in voc.itertuples()]
    assert not (tmp_path / "m.parquet.parts").exists()


def test_rms_db_matches_audio(tmp_path):
    root = _dataset(tmp_path, 1)
    result = scan(root, output=tmp_path / "m.parquet")
    row = result.fragments.iloc[0]
    x, _ = sf.read(root / row.path, start=row.start, stop=row.end, dtype="float64")
    assert row.rms_db == pytest.approx(10 * np.log10(np.mean(x**2)), abs=1e-3)


def test_musdb_and_hq_give_same_fragments(tmp_path):
    need_shared()
    a = scan(MUSDB_SAMPLE, output=tmp_path / "a.parquet").fragments
    b = scan(MUSDBHQ_SAMPLE, output=tmp_path / "b.parquet").fragments
    cols = ["track", "subset", "stem", "start", "end", "sample_rate", "channels"]
    assert len(a) == 4
    pd.testing.assert_frame_equal(a[cols], b[cols])
    np.testing.assert_allclose(a["rms_db"], b["rms_db"], atol=0.01)
    assert read_manifest(tmp_path / "a.parquet").meta["residual_db"]["Music Delta - 80s Rock"] == pytest.approx(
        -31.6, abs=1
    )


def test_truncated_and_silent_files_are_reported_and_skipped(tmp_path):
    root = _dataset(tmp_path, 3)
    bass = root / "train/song0/bass.wav"
    size = os.path.getsize(bass)
    with open(bass, "r+b") as fh:
        fh.truncate(size // 2)
    stems = noise_stems(np.random.default_rng(5))
    stems["vocals"][:] = 0.0
    write_track(root / "train/song1", stems)
    result = scan(root, output=tmp_path / "m.parquet", score=FAST)
    trunc, silent = _problems(result, "truncated"), _problems(result, "silent")
    assert trunc[["track", "stem", "severity"]].values.tolist() == [["song0", "bass", "skipped"]]
    assert "header declares 308700 samples" in trunc["detail"].iloc[0]
    assert silent[["track", "stem"]].values.tolist() == [["song1", "vocals"]]
    frags = result.fragments
    assert not ((frags.track == "song0") & (frags.stem == "bass")).any()
    assert ((frags.track == "song0") & (frags.stem == "drums")).any()  # the rest of the track is kept
    assert not ((frags.track == "song1") & (frags.stem == "vocals")).any()
    assert (frags.track == "song2").sum() == 4
    on_disk = pd.read_parquet(tmp_path / "m.problems.parquet")
    assert len(on_disk) == len(result.problems) == 3  # the truncated stem's track: residual not measured


def test_decode_rate_length_nan_mono_and_residual_checks(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "data"
    # song0: undecodable drums; song1: other at 22050 Hz; song2: vocals 1000 samples short;
    # song3: NaN in bass (float wav); song4: mono vocals; song5: mixture that is not the stem sum
    for i in range(6):
        write_track(root / "train" / f"song{i}", noise_stems(rng), subtype="FLOAT")
    (root / "train/song0/drums.wav").write_bytes(b"not audio at all" * 100)
    x = noise_stems(rng)["other"]
    sf.write(root / "train/song1/other.wav", x.T, 22050, subtype="FLOAT")
    v, _ = sf.read(root / "train/song2/vocals.wav", dtype="float32")
    sf.write(root / "train/song2/vocals.wav", v[:-1000], SR, subtype="FLOAT")
    b, _ = sf.read(root / "train/song3/bass.wav", dtype="float32")
    b[100, 0] = np.nan
    sf.write(root / "train/song3/bass.wav", b, SR, subtype="FLOAT")
    stems = noise_stems(rng)
    stems["vocals"] = stems["vocals"][:1]
    write_track(root / "train/song4", stems, subtype="FLOAT")  # mixture: mono vocals in both channels
    m, _ = sf.read(root / "train/song5/mixture.wav", dtype="float32")
    sf.write(root / "train/song5/mixture.wav", m * 2.0, SR, subtype="FLOAT")

    result = scan(root, output=tmp_path / "m.parquet", score=FAST)
    p = result.problems.set_index("check")
    assert p.loc["decode", ["track", "stem"]].tolist() == ["song0", "drums"]
    assert p.loc["sample_rate", ["track", "stem"]].tolist() == ["song1", "other"]
    assert "22050 Hz" in p.loc["sample_rate", "detail"]
    assert p.loc["length", ["track", "stem", "severity"]].tolist() == [
        "song2",
        "vocals",
        "warning",
    ]  # 1000 samples: read to the shortest
    assert "all read to 307700 samples" in p.loc["length", "detail"]
    assert p.loc["non_finite", ["track", "stem", "detail"]].tolist() == ["song3", "bass", "1 NaN/inf samples"]
    assert p.loc["channels", ["track", "stem", "severity"]].tolist() == ["song4", "vocals", "warning"]
    residual = p.loc[["residual"]].set_index("track")
    assert set(residual["severity"]) == {"warning"}
    assert "by -6.0 dB" in residual.loc["song5", "detail"]  # error m against a mixture 2m
    for track, file in (("song0", "drums"), ("song1", "other"), ("song3", "bass")):  # not measured, and why
        assert residual.loc[track, "detail"] == f"not measured: train/{track}/{file}.wav could not be used (see above)"
    assert sorted(residual.index) == ["song0", "song1", "song3", "song5"]
    frags = result.fragments
    mono = frags[(frags.track == "song4") & (frags.stem == "vocals")]
    assert len(mono) == 1 and mono["channels"].iloc[0] == 1  # mono is accepted and used
    for track, stem in [("song0", "drums"), ("song1", "other"), ("song3", "bass")]:
        assert not ((frags.track == track) & (frags.stem == stem)).any()
    assert (frags.loc[frags.track == "song2", "end"] <= 7 * SR - 1000).all() and (frags.track == "song2").sum() >= 4


def test_files_more_than_a_second_apart_are_skipped(tmp_path):
    rng = np.random.default_rng(2)
    stems = noise_stems(rng)
    stems["vocals"] = stems["vocals"][:, : -2 * SR]
    write_track(tmp_path / "train" / "s", stems, with_mixture=False)
    res = scan(tmp_path, output=tmp_path / "m.parquet", score=None)
    p = res.problems.set_index("check")
    assert p.loc["length", ["stem", "severity"]].tolist() == ["vocals", "skipped"]
    assert "vocals" not in set(res.fragments["stem"])


def test_residual_db_golden():
    m = np.ones((2, 100))
    assert residual_db(m, [0.5 * m, 0.5 * m]) == float("-inf")
    assert residual_db(m, [0.9 * m]) == pytest.approx(-20.0)


def test_custom_stems_and_unknown_stem(tmp_path):
    rng = np.random.default_rng(2)
    root = tmp_path / "data"
    write_track(root / "train/a", noise_stems(rng, names=("vocals", "guitar", "piano")))
    result = scan(root, output=tmp_path / "m.parquet", stems=["guitar", "piano"])
    assert sorted(set(result.fragments["stem"])) == ["guitar", "piano"]
    with pytest.raises(StemcurateError, match="unknown stem 'drums'.*vocals, guitar, piano|unknown stem 'drums'"):
        scan(root, output=tmp_path / "m.parquet", stems=["drums"])


def test_missing_stem_in_one_track_is_reported(tmp_path):
    root = _dataset(tmp_path, 2)
    (root / "train/song1/other.wav").unlink()
    result = scan(root, output=tmp_path / "m.parquet", score=FAST)
    missing = _problems(result, "missing")
    assert missing[["track", "stem"]].values.tolist() == [["song1", "other"]]


def test_interrupted_scan_resumes_without_recomputing(tmp_path, monkeypatch):
    root = _dataset(tmp_path, 3)
    out = tmp_path / "m.parquet"
    full = scan(root, output=tmp_path / "ref.parquet", score=FAST).fragments

    def boom(track):
        if track.name == "song1":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        scan(root, output=out, score=FAST, on_track=boom)
    assert not out.exists()
    assert len(list((tmp_path / "m.parquet.parts").glob("*.parquet"))) == 2  # song0 and song1 finished

    import curate.scan as scan_mod

    calls = []
    real = scan_mod.scan_track
    monkeypatch.setattr(scan_mod, "scan_track", lambda t, *a, **k: calls.append(t.name) or real(t, *a, **k))
    result = scan(root, output=out, score=FAST)
    assert calls == ["song2"] and result.resumed == 2
    pd.testing.assert_frame_equal(result.fragments, full)
    pd.testing.assert_frame_equal(read_manifest(out).frame, read_manifest(tmp_path / "ref.parquet").frame)


def test_changed_settings_discard_old_parts(tmp_path):
    root = _dataset(tmp_path, 2)
    out = tmp_path / "m.parquet"

    def boom(track):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        scan(root, output=out, score=FAST, on_track=boom)
    result = scan(root, output=out, score=FAST, check_config=CheckConfig(silence_db=-60))
    assert result.resumed == 0


def test_failed_write_keeps_previous_manifest(tmp_path, monkeypatch):
    root = _dataset(tmp_path, 1)
    out = tmp_path / "m.parquet"
    scan(root, output=out)
    before = out.read_bytes()
    import curate.data.schema as schema

    def fail(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(schema.pq, "write_table", fail)
    with pytest.raises(StemcurateError, match="m.parquet.*cannot write \\(disk full\\)"):
        scan(root, output=out)
    assert out.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".m.parquet")]


def test_scores_are_deterministic_and_jobs_do_not_change_them(synth_dir, tmp_path):
    a = scan(synth_dir, output=tmp_path / "a.parquet").fragments
    b = scan(synth_dir, output=tmp_path / "b.parquet", jobs=2).fragments
    assert a["quality"].notna().all() and a["bleed_db"].notna().all()
    pd.testing.assert_frame_equal(a, b)


def test_bleed_of_the_requested_stems_comes_from_every_stem_of_the_track(synth_dir, tmp_path):
    """`--stems vocals` scores only the vocals, but a leak into them can come from any sibling: the
    siblings are read for the leak model (before, a vocals-only scan measured no bleed at all)."""
    from curate.data.datasets import discover
    from curate.scantrack import scan_track
    from curate.simulate.corrupt import make_leak

    folder = next((synth_dir / "train").iterdir())
    dst = tmp_path / "train" / folder.name
    dst.mkdir(parents=True)
    stems = {}
    for f in folder.iterdir():
        x, sr = sf.read(f, always_2d=True)
        stems[f.stem] = x.T
    rms = np.sqrt(np.mean(stems["vocals"] ** 2))
    stems["vocals"] = stems["vocals"] + make_leak(stems["drums"], rms, -10.0, int(0.004 * sr), None)
    for name, x in stems.items():
        if name != "mixture":
            sf.write(dst / f"{name}.wav", x.T, sr, subtype="FLOAT")
    track = discover(tmp_path)[0]
    rows = scan_track(track, ["vocals"], score=ScoreConfig(embedder="features")).rows
    assert len(rows) and ((rows["bleed_db"] > -16) & (rows["bleed_stem"] == "drums")).all()


def test_a_stem_scanned_alone_gets_label_scores_from_its_siblings(synth_dir, tmp_path):
    """`--stems vocals` gave no label scores at all (one class in the data), so a vocals.wav that
    holds drums was kept at quality 1. The label model now reads the track's other stems as
    unscored context: the swapped vocals read low, the clean ones high, and only vocals rows and
    problems are written."""
    import shutil

    data = tmp_path / "d"
    shutil.copytree(synth_dir / "train", data / "train")
    swapped = sorted((data / "train").iterdir())[0]
    (swapped / "vocals.wav").rename(swapped / "tmp.wav")
    (swapped / "drums.wav").rename(swapped / "vocals.wav")
    (swapped / "tmp.wav").rename(swapped / "drums.wav")
    res = scan(data, output=tmp_path / "m.parquet", stems=["vocals"])
    f = res.fragments
    assert set(f["stem"]) == {"vocals"} and f["label_score"].notna().all()
    assert set(res.problems["stem"].dropna()) <= {"vocals", "mixture"}
    assert (f.loc[f["track"] == swapped.name, "label_score"] < 0.5).all()
    assert (f.loc[f["track"] != swapped.name, "label_score"] > 0.7).all()
    assert read_manifest(tmp_path / "m.parquet").meta["stems"] == ["vocals"]


def test_a_stem_without_siblings_reads_the_bleed_floor_not_nan(tmp_path):
    """A track that holds only vocals.wav: no sibling, no leak, -80 dB as everywhere else (it was NaN)."""
    rng = np.random.default_rng(0)
    write_track(tmp_path / "train" / "full", noise_stems(rng), with_mixture=False)
    write_track(tmp_path / "train" / "alone", {"vocals": noise_stems(rng)["vocals"]}, with_mixture=False)
    f = scan(tmp_path, output=tmp_path / "m.parquet", score=ScoreConfig(embedder="features")).fragments
    assert f["bleed_db"].notna().all() and (f.loc[f["track"] == "alone", "bleed_db"] == -80.0).all()


def test_tracks_shorter_than_the_window_are_reported_and_strict_fails(tmp_path):
    """Issue 20, case 8: four 5-s tracks (the window is 6 s) gave 0 fragments, 0 problems and exit 0
    under --strict. Each stem now gets a problem row with the reason and a hint, --strict exits 2,
    and filter and train refuse the empty manifest in one line."""
    from typer.testing import CliRunner

    from curate.cli import app as curate_app
    from pipelines.cli import app as pipelines_app

    rng = np.random.default_rng(0)
    for t in range(4):
        write_track(tmp_path / "d" / "train" / f"t{t}", noise_stems(rng, seconds=5.0))
    runner = CliRunner()
    m = tmp_path / "m.parquet"
    res = runner.invoke(curate_app, ["scan", str(tmp_path / "d"), "-o", str(m), "--no-score", "--strict"])
    assert res.exit_code == 2, res.output
    p = pd.read_parquet(tmp_path / "m.problems.parquet")
    assert len(p) == 16 and set(p["check"]) == {"no_fragments"}
    assert (
        p["detail"].str.contains("5.0 s, shorter than the 6-s detection window").all()
        and p["detail"].str.contains("--sad-window").all()
    )
    res = runner.invoke(
        curate_app, ["filter", str(m), "-o", str(tmp_path / "c.parquet"), "--rejected", str(tmp_path / "r.parquet")]
    )
    assert res.exit_code == 2 and "no fragments" in res.output
    res = runner.invoke(pipelines_app, ["train", "-m", str(m), "--model", "tiny", "--out", str(tmp_path / "run")])
    assert res.exit_code == 2 and "manifest has no fragments" in res.output
    res = runner.invoke(
        curate_app,
        ["scan", str(tmp_path / "d"), "-o", str(m), "--no-score", "--sad-window", "2.5", "--sad-hop", "1.25"],
    )
    assert res.exit_code == 0 and len(read_manifest(m).frame) > 0


def test_shards_in_separate_processes_merge_to_the_one_process_scan(tmp_path):
    """Issue 23, item 5: three ``curate scan --shard I/3`` processes at the same time, then the scan without
    --shard, give the manifest of one process; every track is in exactly one shard."""
    import subprocess
    import sys

    from typer.testing import CliRunner

    from curate.cli import app
    from curate.data.datasets import discover
    from curate.scanparts import shard_of
    from curate.simulate.synth import synth_dataset

    synth_dataset(tmp_path / "data", tracks=6, seconds=6, seed=5)
    tracks = discover(tmp_path / "data")
    assert len({shard_of(t, 3) for t in tracks}) >= 2  # the hash spreads them (a shard may get none)
    args = ["scan", str(tmp_path / "data"), "-o", str(tmp_path / "m.parquet"), "--embedder", "features"]
    run = [sys.executable, "-c", "from curate.entry import curate; curate()", *args, "--no-progress"]
    procs = [subprocess.Popen([*run, "--shard", f"{i}/3"], stdout=subprocess.PIPE, text=True) for i in range(3)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    counts = [sum(shard_of(t, 3) == i for t in tracks) for i in range(3)]
    assert all(f"shard {i}/3: {counts[i]} of 6 tracks" in out for i, out in enumerate(outs)), outs
    assert not (tmp_path / "m.parquet").exists() and len(list((tmp_path / "m.parquet.parts").glob("*.parquet"))) == 6
    merged = scan(tmp_path / "data", output=tmp_path / "m.parquet", score=ScoreConfig(embedder="features"))
    assert merged.resumed == 6 and not (tmp_path / "m.parquet.parts").exists()
    single = scan(tmp_path / "data", output=tmp_path / "one.parquet", score=ScoreConfig(embedder="features"))
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "m.parquet"), pd.read_parquet(tmp_path / "one.parquet"))
    assert single.resumed == 0
    res = CliRunner().invoke(app, [*args, "--shard", "3/3"])
    assert res.exit_code == 2 and "0 <= I < N" in res.output
    for bad in ((3, 3), (-1, 2), (0, 0), "0/3", (True, 2)):
        with pytest.raises(StemcurateError, match="0 <= I < N"):
            scan(tmp_path / "data", output=tmp_path / "x.parquet", shard=bad)


def test_shards_with_other_settings_are_refused_not_dropped(tmp_path):
    """A shard or a merge with other settings than the shards' before it stops with the settings that
    differ; nothing is deleted. A folder of the user's with only dot-files is not taken for parts."""
    from curate.scan import ShardScan
    from curate.scansummary import parse_shard
    from curate.simulate.synth import synth_dataset
    from sad import SADConfig

    synth_dataset(tmp_path / "data", tracks=4, seconds=6, seed=5)
    out, parts = tmp_path / "m.parquet", tmp_path / "m.parquet.parts"
    first = scan(tmp_path / "data", output=out, score=None, shard=(0, 2))
    assert isinstance(first, ShardScan) and (parts / "sharded").exists()
    before = sorted(parts.iterdir())
    other = SADConfig(window_s=4.0, hop_s=2.0)
    with pytest.raises(StemcurateError, match=r"other settings \(differing: sad\)"):
        scan(tmp_path / "data", output=out, score=None, shard=(1, 2), sad_config=other)
    with pytest.raises(StemcurateError, match="differing: sad"):
        scan(tmp_path / "data", output=out, score=None, sad_config=other)  # the merge
    assert sorted(parts.iterdir()) == before
    merged = scan(tmp_path / "data", output=out, score=None)
    assert merged.resumed == first.tracks and not parts.exists()

    mine = tmp_path / "h.parquet.parts"
    (mine / ".git").mkdir(parents=True)
    (mine / ".notes").write_text("keep")
    with pytest.raises(StemcurateError, match="is not an interrupted scan's parts folder"):
        scan(tmp_path / "data", output=tmp_path / "h.parquet", score=None)
    assert (mine / ".notes").read_text() == "keep"
    for bad in ("\u00b2/3", "0/\u00b2", "1/0", "a/b", "3", "1/3/5"):
        with pytest.raises(StemcurateError, match="0 <= I < N"):
            parse_shard(bad)
    assert parse_shard(" 1 / 3 ") == (1, 3)
