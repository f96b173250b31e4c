"""curate/data/layouts.py: MoisesDB, MedleyDB, MSST stem folders and CSV lists, on miniature copies of
their real structure written from a synth set (curate/simulate/layouts.py); each read back as the
MUSDB-layout original reads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from curate.cli import app
from curate.common.errors import StemcurateError
from curate.data import audio
from curate.data.checks import ERROR
from curate.data.datasets import discover, load_segment
from curate.data.layouts import detect_layout, medleydb_stem
from curate.data.schema import read_manifest
from curate.export import ExportConfig, export
from curate.scan import scan
from curate.scantrack import ScoreConfig
from curate.simulate.layouts import write_layout
from curate.simulate.synth import synth_dataset

runner = CliRunner()
LAYOUTS = ("moisesdb", "medleydb", "stem-folders", "csv")


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    """A 3-track synth set, its SAD-only manifest, and a copy in each layout."""
    base = tmp_path_factory.mktemp("layouts")
    synth_dataset(base / "musdb", tracks=3, seconds=8, seed=2)
    scan(base / "musdb", output=base / "musdb.parquet", score=None)
    roots = {layout: write_layout(base / "musdb", base / layout, layout, has_bleed=True) for layout in LAYOUTS}
    return base, roots


def _key(frame: pd.DataFrame, names: dict | None = None) -> set:
    """(original track, stem, start, end) of every fragment; ``names`` maps the layout's track names back."""
    tracks = frame["track"].map(names) if names else frame["track"]
    return set(zip(tracks, frame["stem"], frame["start"], frame["end"]))


def test_every_layout_is_detected_and_reads_the_fragments_of_the_original(copies, tmp_path):
    base, roots = copies
    original = read_manifest(base / "musdb.parquet").frame
    found = pd.read_parquet(base / "musdb.problems.parquet")
    assert detect_layout(base / "musdb") == "musdb"
    for layout, root in roots.items():
        assert detect_layout(root) == layout
        res = scan(root, output=tmp_path / f"{layout}.parquet", score=None)
        m = read_manifest(res.manifest)
        assert m.meta["layout"] == layout
        assert sorted(zip(res.problems["stem"], res.problems["check"])) == sorted(zip(found["stem"], found["check"]))
        if layout == "moisesdb":  # track folders are ids; data.json has the song name
            names = {d.name: json.loads((d / "data.json").read_text())["song"] for d in root.iterdir()}
        elif layout in ("stem-folders", "csv"):  # one track per file: <stem>/<track>.wav
            names = {t: t.split("/")[-1].removesuffix(".wav") for t in m.frame["track"]}
        else:
            names = None
        assert _key(m.frame, names) == _key(original), layout
        assert (
            m.frame["dataset_bleed"].tolist() == [True] * len(m.frame)
            if layout in ("moisesdb", "medleydb")
            else (m.frame["dataset_bleed"].isna().all())
        )


def test_a_stem_of_several_files_is_their_sum_in_the_manifest_and_in_every_reader(copies, tmp_path):
    base, roots = copies
    m = read_manifest(scan(roots["medleydb"], output=tmp_path / "m.parquet", score=None).manifest)
    other = m.frame[m.frame["stem"] == "other"].iloc[0]
    assert other["path"] == f"{other['track']}/other" and len(other["parts"]) == 2  # piano + guitar stems
    assert all(p.startswith(f"{other['track']}/{other['track']}_STEMS/") for p in other["parts"])
    assert m.frame[m.frame["stem"] == "vocals"]["parts"].isna().all()  # one file: the file itself
    x, _ = load_segment(m.root, other["path"], "other", other["start"], other["end"], parts=other["parts"])
    ref = audio.read(base / "musdb" / "train" / other["track"] / "other.wav", other["start"], other["end"])[0]
    assert np.allclose(x, ref, atol=1e-6) and np.abs(ref).max() > 0.01
    assert set(m.audio_files().index) >= set(other["parts"]) and other["path"] not in m.audio_files().index


def test_fine_labels_and_the_maps(copies, tmp_path):
    _, roots = copies
    fine = {t.name: set(t.stems) for t in discover(roots["moisesdb"], layout="moisesdb-fine")}
    assert all(s == {"vocals", "bass", "drums", "guitar", "piano"} for s in fine.values())
    res = scan(roots["medleydb"], output=tmp_path / "f.parquet", layout="medleydb-fine", score=None)
    assert set(res.stems) == {"female singer", "electric bass", "drum set", "piano", "distorted electric guitar"}
    assert [medleydb_stem(i) for i in ("male singer", "Vocalists", "double bass", "bass clarinet", "toms")] == [
        "vocals",
        "vocals",
        "bass",
        "other",
        "drums",
    ]
    res = runner.invoke(app, ["scan", str(roots["moisesdb"]), "-o", str(tmp_path / "g.parquet"), "--stems", "guitar"])
    assert res.exit_code == 2 and "--layout moisesdb-fine" in res.output


def test_bad_tracks_are_reported_and_the_rest_scanned(copies, tmp_path):
    _, roots = copies
    moises = tmp_path / "moises"
    shutil.copytree(roots["moisesdb"], moises)
    ids = sorted(p.name for p in moises.iterdir())
    (moises / ids[0] / "data.json").unlink()  # a track without data.json
    (moises / ids[1] / "data.json").write_text("{not json")
    res = scan(moises, output=tmp_path / "m.parquet", score=None)
    skipped = res.problems[res.problems["check"] == "not_a_track"].set_index("track")["detail"]
    assert "no data.json" in skipped[ids[0]] and "unreadable data.json" in skipped[ids[1]]
    assert set(res.fragments["track"]) == {ids[2]}

    medley = tmp_path / "medley"
    shutil.copytree(roots["medleydb"], medley)
    track = sorted(p.name for p in medley.iterdir())[0]
    gone = medley / track / f"{track}_STEMS" / f"{track}_STEM_03.wav"  # piano: half of 'other'
    gone.unlink()
    res = scan(medley, output=tmp_path / "d.parquet", score=None)
    miss = res.problems[res.problems["check"] == "missing"].iloc[0]
    assert (miss["track"], miss["stem"], miss["severity"]) == (track, "other", ERROR)
    assert gone.name in miss["detail"] and f"{track}_METADATA.yaml" in miss["detail"]
    assert not ((res.fragments["track"] == track) & (res.fragments["stem"] == "other")).any()
    assert ((res.fragments["track"] == track) & (res.fragments["stem"] == "vocals")).any()
    second = sorted(p.name for p in medley.iterdir())[1]
    part = medley / second / f"{second}_STEMS" / f"{second}_STEM_04.wav"  # guitar: the other half of 'other'
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    res = scan(medley, output=tmp_path / "t.parquet", score=None)
    cut = res.problems[res.problems["check"] == "truncated"].iloc[0]
    assert (cut["track"], cut["stem"]) == (second, "other") and part.name in cut["detail"]


def test_csv_and_layout_errors(copies, tmp_path):
    _, roots = copies
    for text, needle in (
        ("instrument,file\nvocals,a.wav\n", "needs the columns instrum,path"),
        ("instrum,path\nvocals,\n", "line 2: empty instrum or path"),
        ("instrum,path\nvocals,song.mp3\n", "not a .wav or .flac file"),
    ):
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        res = runner.invoke(app, ["scan", str(bad), "-o", str(tmp_path / "x.parquet"), "--no-score"])
        assert res.exit_code == 2 and needle in res.output and "Traceback" not in res.output, res.output
    lines = roots["csv"].read_text().splitlines()
    listed = tmp_path / "gone.csv"
    listed.write_text("\n".join([*lines, "vocals," + str(tmp_path / "nowhere" / "a.wav")]) + "\n")
    res = scan(listed, output=tmp_path / "g.parquet", score=None)
    miss = res.problems[res.problems["check"] == "missing"]
    assert len(miss) == 1 and miss["track"].iloc[0].endswith("nowhere/a.wav") and "gone.csv" in miss["detail"].iloc[0]
    assert res.fragments["track"].nunique() == 11  # 12 files listed; one vocals file has no active window
    with pytest.raises(StemcurateError, match="unknown layout"):
        discover(roots["moisesdb"], layout="moises")
    with pytest.raises(StemcurateError, match="has no subsets"):
        discover(roots["moisesdb"], subset="test")
    with pytest.raises(StemcurateError, match="no tracks found in the medleydb layout"):
        discover(roots["moisesdb"], layout="medleydb")
    # a MUSDB subset folder given as the root is not taken for stem folders: its tracks are read (the
    # msst layout, MSST's dataset type 1), each as in the MUSDB root
    sub = roots["moisesdb"].parent / "musdb" / "train"
    as_msst, as_musdb = discover(sub), discover(sub.parent)
    assert [t.name for t in as_msst] == [t.name for t in as_musdb] and {t.layout for t in as_msst} == {"msst"}
    assert [sorted(t.stems) for t in as_msst] == [sorted(t.stems) for t in as_musdb]
    with pytest.raises(StemcurateError, match="has no subsets"):
        discover(sub, subset="test")


def test_training_reads_summed_stems(copies, tmp_path):
    """``pipelines train`` on a MedleyDB manifest: its ``other`` crops are the sum of two stem files."""
    from pipelines.cli import app as pipelines_app
    from pipelines.data import FragmentPool
    from tests.conftest import tiny_train

    _, roots = copies
    m = scan(roots["medleydb"], output=tmp_path / "m.parquet", score=None)
    pool = FragmentPool(read_manifest(m.manifest), sorted(set(m.fragments["track"])))
    row = m.fragments[m.fragments["stem"] == "other"].iloc[0]
    got = pool.read(row["track"], "other", int(row["start"]), 4410, sample_rate=44100, channels=2, fade_s=0.0)
    want = audio.read(roots["medleydb"].parent / "musdb" / "train" / row["track"] / "other.wav", int(row["start"]))
    assert got is not None and np.allclose(got[0], want[0][:, :4410], atol=1e-6)
    res = runner.invoke(
        pipelines_app, tiny_train(m.manifest, "--target", "other", out=tmp_path / "run", export_dir=tmp_path / "models")
    )
    assert res.exit_code == 0, res.output


def test_track_folders_without_a_mixture_read_as_the_others(copies, tmp_path):
    """The SDX23 label-noise and bleeding sets ship stems only: the same fragments, no residual check."""
    base, _ = copies
    shutil.copytree(base / "musdb", tmp_path / "stems")
    for mix in (tmp_path / "stems" / "train").glob("*/mixture.wav"):
        mix.unlink()
    assert detect_layout(tmp_path / "stems") == "musdb"
    res = scan(tmp_path / "stems", output=tmp_path / "s.parquet", score=None)
    assert _key(res.fragments) == _key(read_manifest(base / "musdb.parquet").frame)
    assert all(v is None for v in res.residual_db.values()) and "residual" not in set(res.problems["check"])


def test_metadata_quirks_of_real_files(copies, tmp_path):
    """Byte-order marks, flags written as strings, labels with '/' (MedleyDB's 'fx/processed sound'),
    empty or unknown labels, a missing mixture, a track folder given as the root."""
    _, roots = copies
    moises, medley = tmp_path / "moises", tmp_path / "medley"
    shutil.copytree(roots["moisesdb"], moises)
    shutil.copytree(roots["medleydb"], medley)
    ids = sorted(p.name for p in moises.iterdir())
    meta = json.loads((moises / ids[0] / "data.json").read_text())
    for stem in meta["stems"]:
        for source in stem["tracks"]:
            source["hasBleed"] = "false"  # a string, not a boolean
    (moises / ids[0] / "data.json").write_text(json.dumps(meta), encoding="utf-8-sig")  # with a BOM
    meta = json.loads((moises / ids[1] / "data.json").read_text())
    vocals = next(s for s in meta["stems"] if s["stemName"] == "vocals")
    vocals["stemName"] = "Vocals"  # not a MoisesDB name: summed into other, with a warning
    (moises / ids[1] / "vocals").rename(moises / ids[1] / "Vocals")
    (moises / ids[1] / "data.json").write_text(json.dumps(meta))
    res = scan(moises, output=tmp_path / "m.parquet", score=None)
    rows = res.fragments[res.fragments["track"] == ids[0]]
    assert len(rows) and not rows["dataset_bleed"].any()
    label = res.problems[res.problems["check"] == "label"]
    assert list(label["track"]) == [ids[1]] and "'Vocals' is not a MoisesDB stem name" in label["detail"].iloc[0]

    tracks = sorted(p.name for p in medley.iterdir())
    for i, t in enumerate(tracks):
        yml = medley / t / f"{t}_METADATA.yaml"
        text = yml.read_text().replace("instrument: piano", "instrument: fx/processed sound")
        yml.write_text(text.replace("instrument: drum set", "instrument: ''") if i == 0 else text)
    (medley / tracks[1] / f"{tracks[1]}_MIX.wav").unlink()
    res = scan(medley, output=tmp_path / "d.parquet", layout="medleydb-fine", score=None)
    assert "fx-processed sound" in set(res.fragments["stem"]) and tracks[0] not in set(res.fragments["track"])
    skipped = res.problems[res.problems["check"] == "not_a_track"]
    assert list(skipped["track"]) == [tracks[0]] and "has no 'instrument'" in skipped["detail"].iloc[0]
    missing = res.problems[res.problems["check"] == "missing"]
    assert list(missing["track"]) == [tracks[1]] and "_MIX.wav" in missing["detail"].iloc[0]
    with pytest.raises(StemcurateError, match="a MedleyDB track folder; scan the folder that holds the tracks"):
        discover(medley / tracks[1])


def test_csv_lists_as_people_write_them(copies, tmp_path):
    """A BOM, an unquoted comma, a link to a file elsewhere, files under two trees: read, or one line."""
    base, roots = copies
    rows = roots["csv"].read_text().splitlines()[1:]
    bom = tmp_path / "bom.csv"
    bom.write_text("instrum,path\n" + "\n".join(rows) + "\n", encoding="utf-8-sig")
    assert len(discover(bom)) == len(rows)
    bad = tmp_path / "bad.csv"
    bad.write_text(f"instrum,path\n{rows[0]},extra\n")
    res = runner.invoke(app, ["scan", str(bad), "-o", str(tmp_path / "x.parquet"), "--no-score"])
    assert res.exit_code == 2 and "line 2: 3 fields, expected 2 (quote a path" in res.output, res.output
    (tmp_path / "links").mkdir()
    (tmp_path / "links" / "v.wav").symlink_to(rows[0].split(",", 1)[1])  # a link to a file of another folder
    elsewhere = tmp_path / "other_tree" / "b.wav"
    elsewhere.parent.mkdir()
    shutil.copy(rows[1].split(",", 1)[1], elsewhere)
    spread = tmp_path / "spread.csv"
    spread.write_text(f"instrum,path\nvocals,{tmp_path / 'links' / 'v.wav'}\nbass,{elsewhere}\n")
    tracks = discover(spread)
    assert sorted(t.name for t in tracks) == ["links/v.wav", "other_tree/b.wav"]
    scan(spread, output=tmp_path / "s.parquet", score=ScoreConfig(embedder="features"))
    out = export(tmp_path / "s.parquet", tmp_path / "lists", config=ExportConfig(format="msst-csv", threshold=0.0))
    assert len(pd.read_csv(out.written[0])) == 2
    with pytest.raises(StemcurateError, match="must not be written into the dataset"):
        export(tmp_path / "s.parquet", tmp_path / "links" / "x", config=ExportConfig(format="txt"))
    with pytest.raises(StemcurateError, match="nothing to list"):
        export(tmp_path / "s.parquet", tmp_path / "none", config=ExportConfig(format="msst-csv", threshold=1.0))
    assert not (tmp_path / "none").exists()


def test_txt_lists_refuse_a_track_name_they_cannot_hold(copies, tmp_path):
    _, roots = copies
    folders = tmp_path / "folders"
    shutil.copytree(roots["stem-folders"], folders)
    first = sorted((folders / "vocals").iterdir())[0]
    first.rename(first.with_name("a\tb.wav"))
    scan(folders, output=tmp_path / "f.parquet", score=ScoreConfig(embedder="features"))
    with pytest.raises(StemcurateError, match="has a tab or line break in its name"):
        export(tmp_path / "f.parquet", tmp_path / "txt", config=ExportConfig(format="txt"))
    with pytest.raises(StemcurateError, match="has a tab or line break in its name"):
        scan(folders, output=tmp_path / "g.parquet", score=None, txt_dir=tmp_path / "lists")


def test_a_bad_or_mono_part_of_a_summed_stem_is_named(copies, tmp_path):
    """A NaN in one part file is reported with that file (not only the stem), and a mono part of a stereo
    sum is a warning naming it (it is added to both channels)."""
    _, roots = copies
    medley = tmp_path / "medley"
    shutil.copytree(roots["medleydb"], medley)
    first, second = sorted(p.name for p in medley.iterdir())[:2]
    bad = medley / first / f"{first}_STEMS" / f"{first}_STEM_04.wav"  # guitar: half of 'other'
    x, sr = audio.read(bad)
    x[:, 100] = np.nan
    audio.write(bad, x, sr, subtype="FLOAT")
    mono = medley / second / f"{second}_STEMS" / f"{second}_STEM_03.wav"  # piano: the other half
    y, sr = audio.read(mono)
    audio.write(mono, y.mean(axis=0, keepdims=True), sr, subtype="FLOAT")
    res = scan(medley, output=tmp_path / "m.parquet", score=None)
    p = res.problems.set_index(["track", "check"])
    nan = p.loc[(first, "non_finite")]
    assert nan["stem"] == "other" and nan["severity"] == ERROR and bad.name in nan["detail"]
    ch = p.loc[(second, "channels")]
    assert ch["stem"] == "other" and mono.name in ch["detail"] and "mono part" in ch["detail"]
    assert ((res.fragments["track"] == second) & (res.fragments["stem"] == "other")).any()  # a warning only
    assert not ((res.fragments["track"] == first) & (res.fragments["stem"] == "other")).any()


@pytest.mark.parametrize("names", [("bass", "drums", "other", "vocals"), ("Vocals", "Other")])
def test_stem_folders_under_train_are_refused_not_read_as_tracks(tmp_path, names):
    """One folder per stem holding songs (``train/<stem>/<song>.wav``), pointed at as a MUSDB root: its
    folders would read as tracks named like stems whose stems are songs. Refused, naming the layout."""
    import soundfile as sf

    for stem in names:
        (tmp_path / "train" / stem).mkdir(parents=True)
        for song in ("Song A", "Song B"):
            sf.write(tmp_path / "train" / stem / f"{song}.wav", np.zeros((4410, 2)), 44100)
    with pytest.raises(StemcurateError, match=r"named like stems and hold songs.*--layout stem-folders"):
        discover(tmp_path)
    tracks = discover(tmp_path / "train", layout="stem-folders")
    assert len(tracks) == 2 * len(names)
    # a real track folder named like a stem beside real tracks is still a track
    (tmp_path / "ok" / "train" / "vocals").mkdir(parents=True)
    (tmp_path / "ok" / "train" / "Song C").mkdir(parents=True)
    for folder in ("vocals", "Song C"):
        for stem in ("vocals", "bass"):
            sf.write(tmp_path / "ok" / "train" / folder / f"{stem}.wav", np.zeros((4410, 2)), 44100)
    assert sorted(t.name for t in discover(tmp_path / "ok")) == ["Song C", "vocals"]


def _litter(folder, wav) -> None:
    """What file servers and operating systems add to a shared folder: recycle bins holding a deleted song,
    index folders, thumbnails."""
    for name in ("#recycle", "@eaDir", "$RECYCLE.BIN", "__MACOSX", "@Recycle"):
        (folder / name / "old song").mkdir(parents=True)
        shutil.copy(wav, folder / name / "old song" / "vocals.wav")
        shutil.copy(wav, folder / name / "vocals.wav")
    (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (folder / "desktop.ini").write_text("[.ShellClassInfo]\n")


@pytest.mark.parametrize("layout", ["musdb", "moisesdb", "medleydb", "stem-folders"])
def test_recycle_bins_and_index_folders_of_a_share_are_not_data(copies, tmp_path, layout):
    """A NAS share's ``#recycle``, ``@eaDir`` or ``$RECYCLE.BIN`` was a stem class (stem folders) or a
    ``not_a_track`` row (so ``--strict`` failed on any share); it is now passed over like a hidden folder,
    at the root, in a subset and inside a stem folder."""
    base, roots = copies
    root = shutil.copytree(base / "musdb" if layout == "musdb" else roots[layout], tmp_path / layout)
    wav = next(root.rglob("*.wav"))

    def strict_scan(name):
        out = tmp_path / f"{name}.parquet"
        res = runner.invoke(app, ["scan", str(root), "--no-score", "--strict", "--layout", layout, "-o", str(out)])
        problems = pd.read_parquet(tmp_path / f"{name}.problems.parquet").drop(columns="path")
        return res.exit_code, _key(read_manifest(out).frame), problems

    clean = strict_scan("clean")
    _litter(root, wav)
    for sub in [root / "train"] if layout == "musdb" else [d for d in root.iterdir() if d.is_dir()][:1]:
        _litter(sub, wav)
    littered = strict_scan("littered")
    assert littered[:2] == clean[:2] and clean[1]
    pd.testing.assert_frame_equal(littered[2], clean[2])


def test_csv_lists_as_excel_saves_them(copies, tmp_path):
    """Excel in many locales separates fields by semicolons, a tab-separated export by tabs, and a list made
    on Windows writes its relative paths with backslashes: each reads as the plain list does. A Windows
    drive path names no file here, and a list that is not UTF-8 is one line that says how to save it."""
    base, roots = copies
    rows = [r.split(",", 1) for r in roots["csv"].read_text().splitlines()[1:]]
    folder = roots["csv"].parent
    plain = {(t.name, tuple(sorted(t.stems))) for t in discover(roots["csv"])}
    relative = [(label, Path(path).relative_to(folder)) for label, path in rows]
    cases = {
        "semicolon.csv": "instrum;path\r\n" + "".join(f"{a};{p}\r\n" for a, p in rows),
        "tab.csv": "instrum\tpath\n" + "".join(f"{a}\t{p}\n" for a, p in rows),
        "windows.csv": "instrum;path\r\n" + "".join(f'{a};"{str(p).replace("/", chr(92))}"\r\n' for a, p in relative),
        "capitals.csv": "# made by hand\n\nInstrum;Path;Notes\n# a comment\n"
        + "".join(f"{a};{p};x\n" for a, p in rows),
    }
    for name, text in cases.items():
        listed = folder / name
        listed.write_text(text, encoding="utf-8-sig")
        try:
            assert {(t.name, tuple(sorted(t.stems))) for t in discover(listed)} == plain, name
        finally:
            listed.unlink()
    drive = tmp_path / "drive.csv"
    drive.write_text("instrum;path\n\n\nvocals;C:\\music\\song\\vocals.wav\n")  # blank lines: Excel leaves them
    with pytest.raises(StemcurateError, match=r"line 4: C:\\music\\song\\vocals.wav: a Windows path"):
        discover(drive)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("instrum;path\nvocals;chanson é.wav\n".encode("cp1252"))
    res = runner.invoke(app, ["scan", str(latin), "-o", str(tmp_path / "x.parquet"), "--no-score"])
    assert res.exit_code == 2 and "not UTF-8 text" in res.output and "CSV UTF-8" in res.output, res.output
    refused = {
        "mixed.csv": (
            f"instrum;path\n{rows[0][0]};{rows[0][1]}\n\n{rows[1][0]},{rows[1][1]}\n",
            "line 4: fields separated by a comma, the header by a semicolon",
        ),
        "wide.csv": (f"instrum;path\n{rows[0][0]};{rows[0][1]};extra\n", "quote a path holding a semicolon"),
    }
    for name, (text, message) in refused.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(StemcurateError, match=message):
            discover(tmp_path / name)


def test_the_scan_says_which_layout_it_read_and_why(copies, tmp_path):
    """Each detected layout comes with the evidence that decided it (a file or folder of the dataset), printed
    by the scan and kept in the manifest; --layout says it was given."""
    from curate.data.layouts import explain_layout

    base, roots = copies
    evidence = {"musdb": "train/", "moisesdb": "data.json", "medleydb": "_METADATA.yaml", "stem-folders": ".wav"}
    for layout, root in [("musdb", base / "musdb"), *roots.items()]:
        found, why = explain_layout(root)
        assert found == layout and evidence.get(layout, ".csv file") in why, (layout, why)
    out = tmp_path / "m.parquet"
    res = runner.invoke(app, ["scan", str(roots["stem-folders"]), "--no-score", "-o", str(out)])
    assert res.exit_code == 0, res.output
    first = res.stdout.splitlines()[0]
    assert first.startswith("layout: stem-folders (its folders hold audio files not named like a track's stems ("), (
        first
    )
    assert read_manifest(out).meta["layout_reason"] == first[len("layout: stem-folders (") : -1]
    assert explain_layout(base / "musdb", "musdb")[1].startswith("as given")


def test_songs_read_as_tracks_are_refused(copies, tmp_path):
    """``train/<song>/<song>.wav`` made every song a stem of its own (and each a `missing` row in every other
    track); a track folder holding only a mixture said "--stems: no stem names given"."""
    base, _ = copies
    mix = next((base / "musdb" / "train").iterdir()) / "mixture.wav"
    for name in ("songA", "songB", "songC"):
        (tmp_path / "songs" / "train" / name).mkdir(parents=True)
        shutil.copy(mix, tmp_path / "songs" / "train" / name / f"{name}.wav")
        (tmp_path / "mixes" / "train" / name).mkdir(parents=True)
        shutil.copy(mix, tmp_path / "mixes" / "train" / name / "mixture.wav")
    res = runner.invoke(app, ["scan", str(tmp_path / "songs"), "--no-score", "-o", str(tmp_path / "a.parquet")])
    assert res.exit_code == 2 and "each of its 3 track folders holds one audio file" in res.output, res.output
    assert "songA/songA.wav" in res.output and "pipelines separate" in res.output
    res = runner.invoke(app, ["scan", str(tmp_path / "mixes"), "--no-score", "-o", str(tmp_path / "b.parquet")])
    assert res.exit_code == 2 and "its tracks hold a mixture and no stem file" in res.output, res.output
    # one file per track, the same name in each: read as a one-stem dataset, and the scan says so
    for name in ("songA", "songB"):
        (tmp_path / "same" / "train" / name).mkdir(parents=True)
        shutil.copy(mix, tmp_path / "same" / "train" / name / "song.wav")
    res = runner.invoke(app, ["scan", str(tmp_path / "same"), "--no-score", "-o", str(tmp_path / "c.parquet")])
    assert res.exit_code == 0 and "every track holds a single file (song)" in " ".join(res.output.split()), res.output
    # songs sorted by stem beside real tracks: moving them out is the way, not --layout stem-folders
    mixed = shutil.copytree(base / "musdb", tmp_path / "mixed")
    for stem in ("vocals", "bass"):
        (mixed / "train" / stem).mkdir()
        shutil.copy(mix, mixed / "train" / stem / "some song.wav")
    res = runner.invoke(app, ["scan", str(mixed), "--no-score", "-o", str(tmp_path / "d.parquet")])
    assert res.exit_code == 2 and "beside 3 track(s) of stems: move them out of train/" in res.output, res.output
