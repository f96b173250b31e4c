"""curate export for other trainers' readers: every stem in every folder at one shape, splits,
two-stem targets, FLAC and PCM formats; and their datasets read as they are (MSST type-1 roots, CSV
lists with paths relative to where MSST runs)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import musdb
import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from curate.cli import app
from curate.common.errors import StemcurateError
from curate.data import audio
from curate.data.datasets import discover
from curate.export import EXPORT_FILE, ExportConfig, export
from curate.exportsplits import MUSDB18_VALIDATION
from curate.scan import scan
from curate.scantrack import ScoreConfig
from curate.simulate.synth import synth_dataset
from tests.conftest import need_ffmpeg

runner = CliRunner()
STEMS = ("bass", "drums", "other", "vocals")
VALID_NAME = MUSDB18_VALIDATION[7]  # a track named as one of MUSDB18's validation tracks


def _scan(root: Path, out: Path) -> Path:
    scan(root, output=out, score=ScoreConfig(embedder="features"))
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Five synth tracks (one with a mono bass, one without an ``other`` file, one louder than full scale,
    one named as a MUSDB18 validation track) and a second set of two tracks, each scanned."""
    root = tmp_path_factory.mktemp("readers")
    synth_dataset(root / "data", tracks=5, seconds=6, seed=4)
    train = root / "data" / "train"
    names = sorted(p.name for p in train.iterdir())
    x, sr = audio.read(train / names[0] / "bass.wav")
    audio.write(train / names[0] / "bass.wav", x.mean(axis=0, keepdims=True), sr, subtype="FLOAT")
    (train / names[1] / "other.wav").unlink()
    for f in (train / names[2]).iterdir():  # a float source above full scale
        y, _ = audio.read(f)
        audio.write(f, y * 4.0, sr, subtype="FLOAT")
    (train / names[3]).rename(train / VALID_NAME)
    synth_dataset(root / "more", tracks=2, seconds=6, seed=5)
    (root / "more" / "train" / "synth005-000").rename(root / "more" / "train" / "other-song")
    shutil.rmtree(root / "more" / "train" / "synth005-001")
    synth_dataset(root / "more2", tracks=1, seconds=6, seed=5)
    shutil.move(str(root / "more2" / "train" / "synth005-000"), root / "more" / "train" / "synth005-000")
    return dict(
        root=root,
        names=[names[0], names[1], names[2], VALID_NAME, names[4]],
        main=_scan(root / "data", root / "m.parquet"),
        more=_scan(root / "more", root / "more.parquet"),
    )


def _read(path: Path) -> np.ndarray:
    return sf.read(str(path), dtype="float32", always_2d=True)[0].T


def test_every_folder_holds_every_stem_at_one_shape_and_musdb_reads_it(data, tmp_path):
    res = export(data["main"], tmp_path / "e", config=ExportConfig(threshold=0.0))
    src = data["root"] / "data" / "train"
    mono, missing = data["names"][0], data["names"][1]
    for folder in res.written:
        files = {p.stem: _read(p) for p in folder.iterdir()}
        assert set(files) == {*STEMS, "mixture"}
        assert len({x.shape for x in files.values()}) == 1 and files["mixture"].shape[0] == 2
        # nothing rejected at threshold 0: each track's own mixture as its file holds it, but for the track
        # without its other file, whose mixture holds what that file would: the sum of what is written
        if folder.name != missing:
            assert np.array_equal(files["mixture"], _read(src / folder.name / "mixture.wav"))
        assert np.allclose(files["mixture"], sum(files[s] for s in STEMS), atol=4 * 2**-15)
    bass = _read(tmp_path / "e" / "train" / mono / "bass.wav")
    assert np.array_equal(bass[0], bass[1]) and np.array_equal(bass[:1], _read(src / mono / "bass.wav"))
    assert not _read(tmp_path / "e" / "train" / missing / "other.wav").any()
    db = musdb.DB(root=str(tmp_path / "e"), is_wav=True, subsets="train")
    assert len(db) == 4  # the track named as a validation track is in valid/
    for track in db:
        assert all(track.targets[s].audio.shape == track.audio.shape for s in STEMS), track.name


def test_validation_split_by_default_count_names_and_manifest(data, tmp_path):
    names = data["names"]
    default = export(data["main"], tmp_path / "d", config=ExportConfig(threshold=0.0))
    assert default.splits["valid"] == [VALID_NAME] and (tmp_path / "d" / "valid" / VALID_NAME / "vocals.wav").is_file()
    record = json.loads((tmp_path / "d" / EXPORT_FILE).read_text())
    assert record["splits"] == default.splits and record["valid_chosen"] == "MUSDB18's validation list"
    drawn = [export(data["main"], tmp_path / f"n{i}", config=ExportConfig(valid_tracks=2, seed=3)) for i in (0, 1)]
    assert drawn[0].splits == drawn[1].splits and len(drawn[0].splits["valid"]) == 2
    assert sorted(drawn[0].splits["train"] + drawn[0].splits["valid"]) == sorted(names)
    named = export(data["main"], tmp_path / "nm", config=ExportConfig(valid_tracks=f"{names[0]}|{names[4]}"))
    assert named.splits["valid"] == sorted([names[0], names[4]])
    none = export(data["main"], tmp_path / "z", config=ExportConfig(valid_tracks=0))
    assert "valid" not in none.splits and any("no validation split" in w for w in none.warnings)
    both = export(data["main"], tmp_path / "m", valid=data["more"])
    assert both.splits["valid"] == ["other-song", "synth005-000"] and VALID_NAME in both.splits["train"]
    # MUSDB18's convention: the validation track stays in train/, and musdb's split finds it there
    kept = export(data["main"], tmp_path / "mu", config=ExportConfig(valid_layout="musdb"))
    assert kept.splits["valid"] == [VALID_NAME] and not (tmp_path / "mu" / "valid").exists()
    valid = musdb.DB(root=str(tmp_path / "mu"), is_wav=True, subsets="train", split="valid")
    train = musdb.DB(root=str(tmp_path / "mu"), is_wav=True, subsets="train", split="train")
    assert [t.name for t in valid] == [VALID_NAME] and VALID_NAME not in [t.name for t in train]


def test_two_stems_writes_the_target_and_the_sum_of_the_rest(data, tmp_path):
    res = export(data["main"], tmp_path / "v", config=ExportConfig(threshold=0.0, two_stems="vocals", valid_tracks=0))
    src = data["root"] / "data" / "train"
    for folder in res.written:
        assert sorted(p.name for p in folder.iterdir()) == ["mixture.wav", "other.wav", "vocals.wav"]
        got = {p.stem: _read(p) for p in folder.iterdir()}
        rest = sum(_read(f) for f in (src / folder.name).glob("*.wav") if f.stem in ("bass", "drums", "other"))
        assert np.allclose(got["other"], np.broadcast_to(rest, got["other"].shape), atol=1e-5)
        assert np.allclose(got["mixture"], got["vocals"] + got["other"], atol=1e-5)


def test_flac_and_pcm_round_trips_and_a_loud_track_scaled_as_a_whole(data, tmp_path):
    loud = data["names"][2]
    src = data["root"] / "data" / "train"
    for fmt, bits, subtype, lsb in (("flac", "16", "PCM_16", 2**-15), ("wav", "24", "PCM_24", 2**-23)):
        out = tmp_path / f"{fmt}{bits}"
        res = export(data["main"], out, config=ExportConfig(threshold=0.0, audio_format=fmt, bits=bits, valid_tracks=0))
        for folder in res.written:
            for p in folder.iterdir():
                assert p.suffix == f".{fmt}" and sf.info(str(p)).subtype == subtype
        (gain,) = res.gains
        assert gain["track"] == loud and gain["gain_db"] < -6
        record = json.loads((out / EXPORT_FILE).read_text())
        assert record["scaled_down"] == res.gains
        g = 10 ** (gain["gain_db"] / 20)
        for s in ("vocals", "drums"):
            quiet = data["names"][4]
            assert np.abs(_read(out / "train" / quiet / f"{s}.{fmt}") - _read(src / quiet / f"{s}.wav")).max() <= lsb
            assert np.abs(_read(out / "train" / loud / f"{s}.{fmt}") - g * _read(src / loud / f"{s}.wav")).max() <= 2e-4
        mix = _read(out / "train" / loud / f"mixture.{fmt}")
        assert np.abs(mix).max() <= 1.0 and np.allclose(
            mix, sum(_read(out / "train" / loud / f"{s}.{fmt}") for s in STEMS), atol=4 * lsb
        )
    same = export(data["main"], tmp_path / "src", config=ExportConfig(threshold=0.0, valid_tracks=0))
    kinds = {p.name: sf.info(str(p / "vocals.wav")).subtype for p in same.written}  # each track its source's
    floats = {loud, data["names"][0]}  # the mono bass was written as float
    assert not same.gains and kinds == {n: "FLOAT" if n in floats else "PCM_16" for n in data["names"]}


def test_msst_type_1_root_scans_as_its_own_layout(data, tmp_path):
    root = tmp_path / "msst"
    shutil.copytree(data["root"] / "more" / "train", root)
    res = runner.invoke(app, ["scan", str(root), "-o", str(tmp_path / "m.parquet"), "--no-score", "--no-progress"])
    assert res.exit_code == 0 and res.output.startswith("layout: msst"), res.output
    assert {t.name for t in discover(root)} == {"other-song", "synth005-000"}
    res = runner.invoke(app, ["scan", str(root), "--layout", "stem-folders", "-o", str(tmp_path / "s.parquet")])
    assert res.exit_code == 2 and "--layout msst" in res.output and "Traceback" not in res.output, res.output


def test_csv_paths_relative_to_the_current_folder_and_a_list_of_nothing(data, tmp_path, monkeypatch):
    track = data["root"] / "more" / "train" / "other-song"
    shutil.copytree(track, tmp_path / "songs" / "a")
    (tmp_path / "lists").mkdir()
    csv = tmp_path / "lists" / "train.csv"
    csv.write_text("instrum,path\nvocals,songs/a/vocals.wav\nbass,songs/a/bass.wav\n")
    monkeypatch.chdir(tmp_path)  # MSST reads the paths from where it runs
    tracks = discover(csv)
    files = {label: f for t in tracks for label, s in t.stems.items() for f in s.files}
    assert files == {"vocals": tmp_path / "songs" / "a" / "vocals.wav", "bass": tmp_path / "songs" / "a" / "bass.wav"}
    monkeypatch.chdir(tmp_path / "lists")
    res = runner.invoke(app, ["scan", str(csv), "-o", str(tmp_path / "x.parquet"), "--no-score"])
    assert res.exit_code == 2 and "none of the 2 files it lists exists" in res.output, res.output
    assert not (tmp_path / "x.parquet").exists()


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--audio-format", "flac", "--bits", "float"], "FLAC holds 16- or 24-bit"),
        (["--bits", "32"], "--bits '32': one of"),
        (["--audio-format", "mp3"], "--audio-format 'mp3': one of"),
        (["--two-stems", "other"], "name another stem"),
        (["--two-stems", "piano"], "--two-stems piano: no such stem"),
        (["--valid-tracks", "5"], "leave at least one for training"),
        (["--valid-tracks", "nobody"], "no training track named 'nobody'"),
        (["--valid-tracks", "||"], "give a count or track names"),
        (["--valid-layout", "musdb", "--valid-tracks", "1"], "not one of MUSDB18's validation tracks"),
        (["--valid-layout", "flat"], "--valid-layout 'flat': one of"),
    ],
)
def test_refusals_in_one_line(data, tmp_path, args, needle):
    res = runner.invoke(app, ["export", str(data["main"]), str(tmp_path / "o"), "--no-progress", *args])
    assert res.exit_code == 2 and needle in res.output and "Traceback" not in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def test_a_track_in_two_splits_and_a_replaced_export_are_said(data, tmp_path):
    with pytest.raises(StemcurateError, match="--valid and --valid-tracks"):
        export(data["main"], tmp_path / "a", valid=data["more"], config=ExportConfig(valid_tracks=1))
    with pytest.raises(StemcurateError, match="is in both the train and the valid split"):
        export(data["main"], tmp_path / "b", valid=data["main"])
    assert not (tmp_path / "b").exists()
    first = json.loads(export(data["main"], tmp_path / "c").record.read_text())["content_digest"]
    again = json.loads(export(data["main"], tmp_path / "c2").record.read_text())["content_digest"]
    res = runner.invoke(app, ["export", str(data["main"]), str(tmp_path / "c"), "--two-stems", "vocals", "--overwrite"])
    assert res.exit_code == 0 and "metadata/wav_*.json" in res.output and "metadata_*.pkl" in res.output, res.output
    second = json.loads((tmp_path / "c" / EXPORT_FILE).read_text())["content_digest"]
    assert first == again and second != first


def test_msst_csv_of_stem_mp4_sources_decodes_the_listed_stems_once(data, tmp_path):
    need_ffmpeg()
    import stempeg

    src = data["root"] / "data" / "train" / data["names"][4]
    stems = {s: _read(src / f"{s}.wav") for s in ("drums", "bass", "other", "vocals")}
    x = np.stack([sum(stems.values()), *stems.values()]).transpose(0, 2, 1)  # MUSDB18's stream order
    song = tmp_path / "mp4" / "train" / "song.stem.mp4"
    song.parent.mkdir(parents=True)
    stempeg.write_stems(str(song), x, sample_rate=44100, writer=stempeg.StreamsWriter(codec="aac", bitrate=256000))
    manifest = _scan(tmp_path / "mp4", tmp_path / "mp4.parquet")
    res = export(manifest, tmp_path / "csv", config=ExportConfig(format="msst-csv", min_kept=0.0, valid_tracks=0))
    listed = (tmp_path / "csv" / "train.csv").read_text().splitlines()
    folder = tmp_path / "csv" / "train" / "song"
    assert listed[0] == "instrum,path" and sorted(listed[1:]) == sorted(
        f"{s},{(folder / f'{s}.wav').resolve()}" for s in STEMS
    )
    assert folder in res.written and {sf.info(str(p)).subtype for p in folder.iterdir()} == {"PCM_16"}
    track = discover(song.parent.parent)[0]
    for s in STEMS:  # the decoder's samples, at 16 bits
        assert np.abs(_read(folder / f"{s}.wav") - track.load(s)[0]).max() <= 2**-15
    assert sorted(t.name for t in discover(tmp_path / "csv" / "train.csv")) == sorted(f"{s}.wav" for s in STEMS)


@pytest.fixture(scope="module")
def odd(tmp_path_factory):
    """Six synth tracks made odd by hand: a 3-channel stem, a mono mixture, 16-bit stems whose mixture
    clipped at full scale, a track named "2", a track of mono files only, stems at two sample rates."""
    root = tmp_path_factory.mktemp("odd")
    synth_dataset(root / "data", tracks=6, seconds=6, seed=6)
    train = root / "data" / "train"
    t = sorted(p.name for p in train.iterdir())
    x, sr = audio.read(train / t[0] / "other.wav")
    audio.write(train / t[0] / "other.wav", np.concatenate([x, x[:1] * 0.5]), sr, subtype="PCM_16")
    x, _ = audio.read(train / t[1] / "mixture.wav")
    audio.write(train / t[1] / "mixture.wav", x.mean(axis=0, keepdims=True), sr, subtype="PCM_16")
    total = 0
    for s in STEMS:
        y = np.clip(audio.read(train / t[2] / f"{s}.wav")[0] * 4.0, -0.99, 0.99)
        audio.write(train / t[2] / f"{s}.wav", y, sr, subtype="PCM_16")
        total = total + y
    audio.write(train / t[2] / "mixture.wav", np.clip(total, -1, 1), sr, subtype="PCM_16")
    (train / t[3]).rename(train / "2")
    for f in (train / t[4]).iterdir():
        y, _ = audio.read(f)
        audio.write(f, y.mean(axis=0, keepdims=True), sr, subtype="PCM_16")
    y, _ = audio.read(train / t[5] / "bass.wav")
    audio.write(train / t[5] / "bass.wav", y[:, ::2], sr // 2, subtype="PCM_16")
    (train / t[5]).rename(train / "badrate")
    return dict(root=root, manifest=_scan(root / "data", root / "m.parquet"), names=[*t[:3], "2", t[4], "badrate"])


def test_odd_files_give_one_shape_per_export_and_the_mixture_is_the_sum(odd, tmp_path):
    said = []
    res = export(odd["manifest"], tmp_path / "o", config=ExportConfig(threshold=0.0, valid_tracks="badrate|"),
                 on_warning=said.append)  # fmt: skip
    names = odd["names"]
    assert [t for t, _ in res.skipped] == ["badrate"] and "sample rates" in res.skipped[0][1]
    assert sorted(p.name for p in res.written) == sorted(names[:5])
    for folder in res.written:
        files = {p.stem: _read(p) for p in folder.iterdir()}
        assert {x.shape[0] for x in files.values()} == {2} and len({x.shape for x in files.values()}) == 1
        assert np.allclose(files["mixture"], sum(files[s] for s in STEMS), atol=4 * 2**-15), folder.name
    assert [g["track"] for g in res.gains] == [names[2]] and res.gains[0]["gain_db"] < -3
    x, _ = audio.read(odd["root"] / "data" / "train" / names[0] / "other.wav")
    assert np.array_equal(_read(tmp_path / "o" / "train" / names[0] / "other.wav"), x[:2])
    # the validation track could not be written: the record and the warnings say what the export holds
    record = json.loads((tmp_path / "o" / EXPORT_FILE).read_text())
    assert record["splits"] == {"train": sorted(names[:5])} == res.splits
    assert any(w.startswith("valid: 0 of 1 tracks written") for w in said) and any("no validation" in w for w in said)
    with pytest.raises(StemcurateError, match="both a count and a track's name; for the track, give '2|'"):
        export(odd["manifest"], tmp_path / "c", config=ExportConfig(valid_tracks=2))
    assert export(odd["manifest"], tmp_path / "n", config=ExportConfig(valid_tracks="2|")).splits["valid"] == ["2"]


def test_overwrite_and_resume_leave_what_the_export_did_not_write(data, tmp_path):
    out = tmp_path / "o"
    export(data["main"], out, config=ExportConfig(valid_tracks=0))
    track = out / "train" / data["names"][4]
    for added in (track / "notes.txt", out / "train" / "extra" / "vocals.wav"):
        added.parent.mkdir(exist_ok=True)
        added.write_text("mine")
        res = runner.invoke(app, ["export", str(data["main"]), str(out), "--overwrite", "--no-progress"])
        assert res.exit_code == 2 and "holds something else than an export" in res.output, res.output
        assert added.read_text() == "mine"
        shutil.rmtree(added.parent) if added.parent.name == "extra" else added.unlink()
    # an export under way whose manifest changed is not resumed: it has other settings
    manifest = tmp_path / "m.parquet"
    shutil.copy(data["main"], manifest)
    seen, said = [], []

    def stop_at_second(name, total):
        seen.append(name)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export(manifest, tmp_path / "r", config=ExportConfig(valid_tracks=0), progress=stop_at_second)
    shutil.copy(data["more"], manifest)
    with pytest.raises(StemcurateError, match="holds an export with other settings; pass --overwrite"):
        export(manifest, tmp_path / "r", config=ExportConfig(valid_tracks=0))
    # an --overwrite cut short: the resumed run still says the trainers' indexes are stale
    seen.clear()
    with pytest.raises(KeyboardInterrupt):
        export(manifest, tmp_path / "r", overwrite=True, progress=stop_at_second, on_warning=said.append)
    assert len(said) == 1 and "metadata_*.pkl" in said[0]
    again = export(manifest, tmp_path / "r", overwrite=True)
    assert again.resumed and any("metadata_*.pkl" in w for w in again.warnings)
    assert not (tmp_path / "r" / ".stemcurate-replaced").exists()


def test_content_digest_tells_exports_of_other_audio_apart(data, tmp_path):
    digest = {}
    for name, t in (("a", 0.0), ("b", 0.0), ("c", 0.99)):
        res = export(data["main"], tmp_path / name, config=ExportConfig(threshold=t, valid_tracks=0))
        digest[name] = json.loads(res.record.read_text())["content_digest"]
    sizes = {n: sorted(p.stat().st_size for p in (tmp_path / n).rglob("*.wav")) for n in "ac"}
    assert digest["a"] == digest["b"] != digest["c"] and sizes["a"] == sizes["c"]
