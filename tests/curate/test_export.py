"""curate/export.py: MUSDB18-HQ folders with rejected regions silenced (read back by musdb), MSST CSV
lists, txt lists, resume after an interrupt, and refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from curate.common.errors import StemcurateError
from curate.data.schema import read_manifest
from curate.export import EXPORT_FILE, ExportConfig, export
from curate.exportlists import write_txt_lists
from curate.filter import filter_manifest
from curate.scan import scan
from curate.scantrack import ScoreConfig
from curate.simulate.corrupt import corrupt_dataset
from curate.simulate.synth import synth_dataset

STEMS = ("vocals", "bass", "drums", "other")


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    """A scored manifest of a corrupted 4-track synth set, and curate filter's kept/rejected manifests."""
    root = tmp_path_factory.mktemp("export")
    synth_dataset(root / "data", tracks=4, seconds=8, seed=2)
    corrupt_dataset(root / "data", root / "noisy", mislabel_rate=0.3, bleed_rate=0.3, seed=1)
    scan(root / "noisy", output=root / "m.parquet", score=ScoreConfig(embedder="features"))
    res = filter_manifest(root / "m.parquet", output=root / "clean.parquet", rejected=root / "rej.parquet")
    assert len(res.kept) and len(res.rejected)
    return root, res.kept, res.rejected


def _read(path):
    return sf.read(path, dtype="float32", always_2d=True)[0].T


def test_musdb_hq_silences_rejected_regions_only_and_reads_back_with_musdb(curated, tmp_path):
    root, kept, rejected = curated
    out = export(root / "clean.parquet", tmp_path / "hq", config=ExportConfig(fade_s=0.01))
    assert len(out.written) == 4 and (tmp_path / "hq" / EXPORT_FILE).is_file()
    fade = int(0.01 * 44100)
    for r in rejected.itertuples():
        got, src = _read(tmp_path / "hq" / "train" / r.track / f"{r.stem}.wav"), _read(root / "noisy" / r.path)
        covered = np.zeros(got.shape[1], bool)
        for k in kept[(kept.track == r.track) & (kept.stem == r.stem)].itertuples():
            covered[max(0, k.start - fade) : k.end + fade] = True
        inside = np.zeros_like(covered)
        inside[r.start + fade : r.end - fade] = True
        assert np.all(got[:, inside & ~covered] == 0) and np.abs(src[:, inside & ~covered]).max() > 0
    for k in kept.itertuples():  # kept audio away from any fade is the source, bit for bit
        got, src = _read(tmp_path / "hq" / "train" / k.track / f"{k.stem}.wav"), _read(root / "noisy" / k.path)
        near = np.zeros(got.shape[1], bool)
        for r in rejected[(rejected.track == k.track) & (rejected.stem == k.stem)].itertuples():
            near[max(0, r.start - fade) : r.end + fade] = True
        sel = np.zeros_like(near)
        sel[k.start : k.end] = True
        assert np.array_equal(got[:, sel & ~near], src[:, sel & ~near])
    # the same export from the scored manifest and the filter's threshold
    again = export(root / "m.parquet", tmp_path / "hq2", config=ExportConfig(fade_s=0.01))
    for f in (tmp_path / "hq" / "train").rglob("*.wav"):
        assert np.array_equal(_read(f), _read(tmp_path / "hq2" / f.relative_to(tmp_path / "hq")))
    assert len(again.written) == 4

    import musdb

    db = musdb.DB(root=str(tmp_path / "hq"), is_wav=True, subsets="train")
    assert len(db) == 4
    touched = set(rejected["track"])
    for track in db:  # musdb reads WAVs through ffmpeg at 16 bits: equal within 2 LSB, clipped at full scale
        parts = sum(track.targets[s].audio for s in STEMS)
        own = _read(root / "noisy" / "train" / track.name / "mixture.wav").T
        want = parts if track.name in touched else own  # a touched track's mixture is the sum of its stems
        assert track.audio.shape == want.shape and np.abs(track.audio - np.clip(want, -1, 1)).max() < 7e-5


def test_drop_tracks_keeps_only_clean_tracks_unchanged(curated, tmp_path):
    root, kept, rejected = curated
    worst = read_manifest(root / "m.parquet").frame.groupby("track")["quality"].min().sort_values()
    t = float((worst.iloc[1] + worst.iloc[2]) / 2)  # two tracks hold a fragment below t, two do not
    res = export(root / "m.parquet", tmp_path / "d", config=ExportConfig(drop_tracks=True, threshold=t))
    assert {p.name for p in res.written} == set(worst.index[2:]) and {n for n, _ in res.skipped} == set(worst.index[:2])
    with pytest.raises(StemcurateError, match="every track has a rejected fragment; --drop-tracks leaves nothing"):
        export(root / "m.parquet", tmp_path / "none", config=ExportConfig(drop_tracks=True, threshold=1.0))
    assert not (tmp_path / "none").exists()
    # at threshold 0 nothing is rejected: every track is copied as it is, its mixture the sum of its stems
    res = export(root / "m.parquet", tmp_path / "all", config=ExportConfig(drop_tracks=True, threshold=0.0))
    assert {p.name for p in res.written} == set(worst.index) and not res.skipped
    for folder in res.written:
        for stem in STEMS:
            src = root / "noisy" / "train" / folder.name / f"{stem}.wav"
            assert np.array_equal(_read(folder / f"{stem}.wav"), _read(src))
        mix = _read(root / "noisy" / "train" / folder.name / "mixture.wav")
        assert np.allclose(_read(folder / "mixture.wav"), mix, atol=1e-6)


def test_msst_csv_lists_whole_stem_files_with_enough_kept(curated, tmp_path):
    root, kept, rejected = curated
    export(root / "clean.parquet", tmp_path / "c", config=ExportConfig(format="msst-csv", min_kept=0.5))
    text = (tmp_path / "c" / "train.csv").read_text()
    assert text.startswith("instrum,path\n")
    table = pd.read_csv(tmp_path / "c" / "train.csv")
    assert list(table.columns) == ["instrum", "path"] and table["path"].map(lambda p: p.startswith("/")).all()
    every = pd.concat([kept, rejected])
    share = (kept.end - kept.start).groupby([kept.stem, kept.path]).sum() / (every.end - every.start).groupby(
        [every.stem, every.path]
    ).sum()
    want = {(s, str((root / "noisy" / p).resolve())) for (s, p), v in share.fillna(0).items() if v >= 0.5}
    assert set(zip(table["instrum"], table["path"])) == want and want


def test_txt_lists_are_the_kept_fragments(curated, tmp_path):
    root, kept, _ = curated
    export(root / "clean.parquet", tmp_path / "t", config=ExportConfig(format="txt"))
    write_txt_lists(kept, tmp_path / "ref", "train", list(STEMS))
    for stem in STEMS:
        name = f"{stem}_train.txt"
        assert (tmp_path / "t" / name).read_text() == (tmp_path / "ref" / name).read_text()


def test_an_interrupted_export_resumes_and_ends_as_a_straight_one(curated, tmp_path):
    root, _, _ = curated
    seen = []

    def stop_at_third(name, total):
        seen.append(name)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export(root / "m.parquet", tmp_path / "r", progress=stop_at_third)
    assert not list((tmp_path / "r" / "train").glob(".*"))  # no half-written track folder
    res = export(root / "m.parquet", tmp_path / "r")
    assert len(res.resumed) == 2 and len(res.written) == 2
    straight = export(root / "m.parquet", tmp_path / "s")
    for f in (tmp_path / "s" / "train").rglob("*.wav"):
        assert np.array_equal(_read(f), _read(tmp_path / "r" / f.relative_to(tmp_path / "s")))
    assert len(straight.written) == 4


def test_refusals(curated, tmp_path):
    root, _, _ = curated
    export(root / "m.parquet", tmp_path / "x", config=ExportConfig(format="txt"))
    with pytest.raises(StemcurateError, match="finished export; pass --overwrite"):
        export(root / "m.parquet", tmp_path / "x", config=ExportConfig(format="txt"))
    (tmp_path / "x" / EXPORT_FILE).unlink()  # as if interrupted: resumable with the same settings only
    with pytest.raises(StemcurateError, match="export with other settings"):
        export(root / "m.parquet", tmp_path / "x", config=ExportConfig(format="txt", threshold=0.5))
    assert export(root / "m.parquet", tmp_path / "x", config=ExportConfig(format="msst-csv"), overwrite=True).written
    assert not (tmp_path / "x" / "vocals_train.txt").exists()  # the earlier export was replaced
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(StemcurateError, match="something else than an export"):
        export(root / "m.parquet", tmp_path / "mine", overwrite=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(StemcurateError, match="rejected fragments"):
        export(root / "rej.parquet", tmp_path / "y")
    with pytest.raises(StemcurateError, match="into the dataset"):
        export(root / "m.parquet", root / "noisy" / "exported")
    with pytest.raises(StemcurateError, match="--format"):
        ExportConfig(format="demucs")
    with pytest.raises(StemcurateError, match="--min-kept"):
        ExportConfig(min_kept=2)
    lone = tmp_path / "lone.parquet"
    shutil.copy(root / "clean.parquet", lone)
    moved = root / "m.parquet"
    hidden = root / "m.parquet.away"
    moved.rename(hidden)
    try:
        with pytest.raises(StemcurateError, match="cannot be read; export the scored manifest"):
            export(lone, tmp_path / "z")
    finally:
        hidden.rename(moved)


def test_scan_of_the_export_finds_the_kept_fragments(curated, tmp_path):
    """Round trip: the kept fragments are still salient (SAD) where the export left them."""
    root, kept, _ = curated
    export(root / "clean.parquet", tmp_path / "hq")
    again = scan(tmp_path / "hq", output=tmp_path / "again.parquet", score=None).fragments
    for k in kept.itertuples():
        same = again[(again.track == k.track) & (again.stem == k.stem)]
        overlap = (np.minimum(same.end, k.end) - np.maximum(same.start, k.start)).clip(lower=0).sum()
        assert overlap >= 0.9 * (k.end - k.start), (k.track, k.stem, k.start)


def test_the_command_line_refuses_in_one_line(curated, tmp_path):
    from typer.testing import CliRunner

    from curate.cli import app

    root, _, _ = curated
    runner = CliRunner()
    args = ["export", str(root / "m.parquet"), str(tmp_path / "o"), "-f", "txt", "--no-progress"]
    assert runner.invoke(app, args).exit_code == 0
    for extra, why in (([], "--overwrite"), (["-f", "zip"], "--format"), (["--threshold", "2"], "--threshold")):
        res = runner.invoke(app, args + extra)
        lines = [ln for ln in res.output.splitlines() if ln.strip()]
        assert res.exit_code == 2 and len(lines) == 1 and why in lines[0] and "Traceback" not in res.output, res.output
    assert runner.invoke(app, args + ["--overwrite"]).exit_code == 0


def test_overwrite_never_removes_what_the_export_did_not_write(curated, tmp_path):
    """Review of issue 22: --overwrite removed the whole folder, a user's files and a dataset in it too."""
    root, _, _ = curated
    out = tmp_path / "o"
    export(root / "m.parquet", out, config=ExportConfig(format="txt"))
    (out / "notes.txt").write_text("mine")
    with pytest.raises(StemcurateError, match="something else than an export"):
        export(root / "m.parquet", out, config=ExportConfig(format="txt"), overwrite=True)
    assert (out / "notes.txt").read_text() == "mine" and (out / "vocals_train.txt").is_file()
    with pytest.raises(StemcurateError, match="holds the dataset"):
        export(root / "m.parquet", root.parent, overwrite=True)
    inner = tmp_path / "box"
    inner.mkdir()
    shutil.copy(root / "m.parquet", inner / "m.parquet")
    with pytest.raises(StemcurateError, match="holds the manifest"):
        export(inner / "m.parquet", tmp_path, overwrite=True)
    assert (inner / "m.parquet").is_file()


def test_files_gone_since_the_scan_are_named_and_nothing_is_written(curated, tmp_path):
    root, kept, _ = curated
    data = tmp_path / "noisy"
    shutil.copytree(root / "noisy", data)
    scanned = pd.read_parquet(root / "m.parquet")
    from curate.data.schema import read_manifest, write_manifest

    m = read_manifest(root / "m.parquet")
    write_manifest(m.frame, tmp_path / "m.parquet", root=data, meta=m.meta)
    victim = data / scanned["path"].iloc[0]
    victim.unlink()
    for fmt in ("musdb-hq", "msst-csv"):
        with pytest.raises(StemcurateError, match=f"{victim.name}: missing"):
            export(tmp_path / "m.parquet", tmp_path / fmt, config=ExportConfig(format=fmt))
        assert not (tmp_path / fmt).exists()
    # a track with a file no reader can use (cut short: lengths differ) is left out, named with why
    shutil.copy(root / "noisy" / scanned["path"].iloc[0], victim)
    first = sorted(set(scanned["track"]))[0]
    stem = next((data / "train" / first).glob("*.wav"))
    x, sr = sf.read(stem)
    sf.write(stem, x[: sr // 2], sr)
    res = export(tmp_path / "m.parquet", tmp_path / "cut")
    assert [t for t, _ in res.skipped] == [first] and "differ in length" in res.skipped[0][1]
    assert not (tmp_path / "cut" / "train" / first).exists() and len(res.written) == len(set(scanned["track"])) - 1


def test_a_kept_manifest_exports_at_its_filters_threshold(curated, tmp_path):
    root, kept, _ = curated
    with pytest.raises(StemcurateError, match="kept these fragments at threshold 0.7"):
        export(root / "clean.parquet", tmp_path / "a", config=ExportConfig(format="txt", threshold=0.2))
    res = export(root / "clean.parquet", tmp_path / "b", config=ExportConfig(format="txt"))
    import json

    assert json.loads(res.record.read_text())["threshold"] == 0.7 and res.config.threshold == 0.7


def test_summed_stems_export_as_one_file_or_file_by_file(tmp_path):
    """A MoisesDB copy of a synth set (``other`` in two source files): musdb-hq writes each stem as the
    original, msst-csv lists both files of ``other``; a dataset without tracks writes no folders."""
    import musdb

    from curate.simulate.layouts import write_layout

    synth_dataset(tmp_path / "musdb", tracks=3, seconds=8, seed=2)
    root = write_layout(tmp_path / "musdb", tmp_path / "moises", "moisesdb", has_bleed=True)
    scan(root, output=tmp_path / "m.parquet", score=ScoreConfig(embedder="features"))
    export(tmp_path / "m.parquet", tmp_path / "hq", config=ExportConfig(threshold=0.0))
    db = musdb.DB(root=str(tmp_path / "hq"), is_wav=True, subsets="train")
    songs = {json.loads((d / "data.json").read_text())["song"]: d.name for d in root.iterdir()}
    assert sorted(t.name for t in db) == sorted(songs.values())
    for name, tid in songs.items():
        track = next(t for t in db if t.name == tid)
        for stem in STEMS:
            ref = _read(tmp_path / "musdb" / "train" / name / f"{stem}.wav")
            got = track.targets[stem].audio.T  # musdb reads WAVs through ffmpeg at 16 bits
            assert np.abs(got - np.clip(ref, -1, 1)).max() < 7e-5, (name, stem)
    export(tmp_path / "m.parquet", tmp_path / "csv", config=ExportConfig(format="msst-csv", threshold=0.0))
    rows = pd.read_csv(tmp_path / "csv" / "train.csv")
    pairs = pd.read_parquet(tmp_path / "m.parquet")[["track", "stem"]].drop_duplicates()
    assert (pairs["stem"] == "other").sum() == 3  # a stem without fragments (one vocals) is in no list
    assert len(rows) == len(pairs) + 3 and (rows["instrum"] == "other").sum() == 6
    assert {Path(p).parent.name for p in rows.loc[rows["instrum"] == "other", "path"]} == {"guitar", "piano"}

    folders = write_layout(tmp_path / "musdb", tmp_path / "folders", "stem-folders")
    scan(folders, output=tmp_path / "f.parquet", score=ScoreConfig(embedder="features"))
    with pytest.raises(StemcurateError, match="no tracks to write as folders"):
        export(tmp_path / "f.parquet", tmp_path / "fhq", config=ExportConfig(threshold=0.0))
    assert not (tmp_path / "fhq").exists()
    out = export(tmp_path / "f.parquet", tmp_path / "fcsv", config=ExportConfig(format="msst-csv", threshold=0.0))
    assert len(pd.read_csv(out.written[0])) == len(pairs)
    from reports.curation import curation_report

    pages = {
        n: Path(curation_report(tmp_path / f"{n}.parquet", output=tmp_path / f"{n}.html")).read_text() for n in "fm"
    }
    assert "no track structure" in pages["f"] and "no track structure" not in pages["m"]
    assert "flags bleed on" in pages["m"] and "flags bleed on" not in pages["f"]  # the copy says hasBleed


def test_msst_csv_quotes_a_path_with_a_comma_and_scans_back(tmp_path):
    """MSST reads its CSV with pandas: a path with a comma is quoted (not refused), and curate scan reads
    the list back (the csv layout) to the same fragments."""
    synth_dataset(tmp_path / "data", tracks=2, seconds=8, seed=4)
    first = sorted((tmp_path / "data" / "train").iterdir())[0]
    first.rename(first.with_name("Jokers, Jacks & Kings"))
    scan(tmp_path / "data", output=tmp_path / "m.parquet", score=ScoreConfig(embedder="features"))
    out = export(tmp_path / "m.parquet", tmp_path / "csv", config=ExportConfig(format="msst-csv", threshold=0.0))
    rows = pd.read_csv(out.written[0])
    assert any("Jokers, Jacks & Kings" in p for p in rows["path"]) and all(Path(p).is_file() for p in rows["path"])
    back = scan(out.written[0], output=tmp_path / "back.parquet", score=None)
    m = pd.read_parquet(tmp_path / "m.parquet")
    key = lambda f, names: sorted(zip(f["track"].map(names), f["stem"], f["start"], f["end"]))  # noqa: E731
    to_track = {t: t.split("/")[-2] for t in back.fragments["track"]}  # <track>/<stem>.wav under the data root
    assert key(back.fragments, to_track) == key(m, {t: t for t in m["track"]})


def test_names_at_the_file_systems_limit_are_written_whole(tmp_path):
    """A track name of 250 bytes (130 characters: non-ASCII letters take two) fits the 255-byte limit; the
    hidden work folder and temporary files the writers add must not take it over."""
    from curate.common.atomic import atomic_dir, write_text

    name = "é" * 120 + "a" * 10
    assert len(name.encode()) == 250
    synth_dataset(tmp_path / "data", tracks=2, seconds=8, seed=3)
    first = sorted((tmp_path / "data" / "train").iterdir())[0]
    first.rename(first.parent / name)
    scan(tmp_path / "data", output=tmp_path / "m.parquet", score=ScoreConfig(embedder="features"))
    out = export(tmp_path / "m.parquet", tmp_path / "out")
    assert len(out.written) == 2 and (tmp_path / "out" / EXPORT_FILE).is_file()
    assert sorted(p.name for p in (tmp_path / "data" / "train" / name).iterdir()) == sorted(
        p.name for p in (tmp_path / "out" / "train" / name).iterdir()
    )
    left = [p for p in (tmp_path / "out").rglob(".*") if p.name.endswith((".partial", ".tmp"))]
    assert not left  # no work folder or temporary file left
    long_file = tmp_path / ("b" * 251 + ".txt")  # 255 bytes
    write_text(long_file, "kept")
    assert long_file.read_text() == "kept"
    with atomic_dir(tmp_path / ("c" * 255)) as work:
        (work / "x").write_text("1")
    assert (tmp_path / ("c" * 255) / "x").is_file()
