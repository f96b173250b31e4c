import numpy as np
import pytest

from curate.common.errors import StemcurateError
from curate.data.datasets import DEFAULT_STEMS, available_stems, discover, load_segment
from tests.conftest import MUSDB_SAMPLE, MUSDBHQ_SAMPLE, need_shared, noise_stems, write_track


def test_musdb_stem_mp4_and_hq_layout_agree():
    need_shared()
    (mp4,) = discover(MUSDB_SAMPLE, subset="train")
    (hq,) = discover(MUSDBHQ_SAMPLE, subset="train")
    assert mp4.name == hq.name == "Music Delta - 80s Rock"
    assert mp4.is_stem_mp4 and not hq.is_stem_mp4
    assert sorted(mp4.stems) == sorted(hq.stems) == sorted(DEFAULT_STEMS)
    for name in ("mixture", *DEFAULT_STEMS):
        a, ra = mp4.load(name)
        b, rb = hq.load(name)
        assert a.dtype == b.dtype == np.float32
        assert ra == rb == 44100
        assert a.shape == b.shape and a.shape[0] == 2
        assert np.abs(a - b).max() < 1e-3, name


def test_load_segment_matches_full_read_for_both_layouts():
    need_shared()
    for root, rel in (
        (MUSDB_SAMPLE, "train/Music Delta - 80s Rock.stem.mp4"),
        (MUSDBHQ_SAMPLE, "train/Music Delta - 80s Rock/bass.wav"),
    ):
        (track,) = discover(root)
        full, _ = track.load("bass")
        seg, sr = load_segment(root, rel, "bass", 1000, 5000)
        assert sr == 44100
        np.testing.assert_array_equal(seg, full[:, 1000:5000])


def test_musdb_dir_env_is_default_root(monkeypatch):
    need_shared()
    monkeypatch.setenv("MUSDB_DIR", str(MUSDBHQ_SAMPLE))
    assert [t.name for t in discover(None)] == ["Music Delta - 80s Rock"]
    monkeypatch.delenv("MUSDB_DIR")
    with pytest.raises(StemcurateError, match="MUSDB_DIR"):
        discover(None)


def test_flac_custom_stems_and_mono(tmp_path):
    rng = np.random.default_rng(0)
    stems = noise_stems(rng, 2.0, names=("vocals", "guitar", "piano"))
    stems["guitar"] = stems["guitar"][:1]  # mono stem
    write_track(tmp_path / "test" / "song", stems, ext="flac", with_mixture=False)
    (track,) = discover(tmp_path, subset="test")
    assert track.subset == "test" and track.mixture is None
    assert available_stems([track]) == ["guitar", "piano", "vocals"]
    g, sr = track.load("guitar")
    assert g.shape == (1, 88200) and sr == 44100
    assert np.abs(g - stems["guitar"]).max() < 1e-4  # 16-bit flac


def test_mismatched_lengths_and_rates_name_the_track(tmp_path):
    rng = np.random.default_rng(0)
    stems = noise_stems(rng, 1.0)
    stems["bass"] = stems["bass"][:, :-10]
    write_track(tmp_path / "train" / "bad song", stems, with_mixture=False)
    (track,) = discover(tmp_path)
    loaded, _ = track.load_all()  # 10 samples apart: read to the shortest (curate.data.conform)
    assert {a.shape[1] for a in loaded.values()} == {44090}
    write_track(
        tmp_path / "train" / "bad song", dict(stems, bass=np.zeros((2, 3 * 44100), np.float32)), with_mixture=False
    )
    with pytest.raises(StemcurateError, match="track 'bad song': files differ in length by 2.00 s"):
        track.load_all()
    import soundfile as sf

    sf.write(tmp_path / "train" / "bad song" / "bass.wav", stems["vocals"].T, 22050)
    with pytest.raises(StemcurateError, match="track 'bad song': stems have different sample rates"):
        track.load_all()


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.mkdir(), "is empty"),
        (lambda p: (p / "other").mkdir(parents=True), "no 'train' folder"),
        (lambda p: (p / "train" / "song").mkdir(parents=True), "no tracks found"),
    ],
)
def test_discovery_errors_name_the_path(tmp_path, setup, message):
    root = tmp_path / "data"
    setup(root)
    with pytest.raises(StemcurateError, match=message) as info:
        discover(root)
    assert str(root) in str(info.value)


def test_unknown_subset(tmp_path):
    with pytest.raises(StemcurateError, match="unknown subset"):
        discover(tmp_path, subset="valid")


def test_hidden_and_nested_entries(tmp_path):
    """Issue 20, case 5: a macOS ``._<name>.stem.mp4`` beside a MUSDB18 track refused the whole dataset,
    and a track in ``train/extra/`` was reported as four missing stems under a path that does not exist.
    Hidden files and folders are ignored in both layouts; a nested track and a stray file are reported
    with their real paths."""
    import shutil

    from tests.conftest import MUSDB_SAMPLE, need_shared

    need_shared()
    src = next((MUSDB_SAMPLE / "train").glob("*.stem.mp4"))
    train = tmp_path / "train"
    (train / "extra").mkdir(parents=True)
    shutil.copy(src, train / src.name)
    shutil.copy(src, train / "extra" / "nested song.stem.mp4")
    (train / f"._{src.name}").write_bytes(b"\x00\x05\x16\x07AppleDouble junk")
    write_track(train / "._hidden folder", noise_stems(np.random.default_rng(0), 1.0))
    (train / "notes.txt").write_text("liner notes")
    tracks = discover(tmp_path)
    assert [t.name for t in tracks] == [src.name[: -len(".stem.mp4")]]
    assert set(tracks[0].stems) == {"vocals", "bass", "drums", "other"} and tracks[0].mixture.stream == 0
    from curate.data.datasets import not_tracks
    from curate.scan import scan

    found = {p.name: why for p, why in not_tracks(tmp_path)}
    assert set(found) == {"extra", "notes.txt"} and "nested" in found["extra"]
    res = scan(tmp_path, output=tmp_path / "m.parquet", score=None)
    p = res.problems[res.problems["check"] == "not_a_track"]
    assert sorted(p["path"]) == ["train/extra", "train/notes.txt"] and len(res.fragments) > 0
    assert not res.problems["path"].fillna("").str.contains("hidden|\\._", regex=True).any()
