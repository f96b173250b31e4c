"""The benchmarks' fixed real-song split: disjoint, complete, the same every time, and linked as subsets."""

from pathlib import Path

import pytest

from bench import common


def _songs(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        (folder / f"Artist {i:02d} - Song.stem.mp4").write_bytes(b"")
    (folder / "notes.txt").write_text("not a song")
    return folder


def test_split_is_disjoint_complete_and_fixed(tmp_path):
    folder = _songs(tmp_path / "songs", 94)
    train, valid, test = common.split_real_songs(folder)
    assert (len(train), len(valid), len(test)) == (62, common.N_VALID, common.N_TEST)
    names = [p.name for p in train + valid + test]
    assert len(set(names)) == 94 and all(n.endswith(".stem.mp4") for n in names)
    assert common.split_real_songs(folder) == (train, valid, test)
    # a permutation, not the sorted order cut in three
    assert [p.name for p in test] != sorted(names)[: common.N_TEST]


def test_too_few_songs_is_an_error(tmp_path):
    with pytest.raises(SystemExit, match="songs"):
        common.split_real_songs(_songs(tmp_path / "songs", 20))


def test_link_real_songs_builds_train_and_test_subsets(tmp_path):
    folder = _songs(tmp_path / "songs", 50)
    data = tmp_path / "data"
    train, valid, test = common.link_real_songs(data, songs=folder)
    linked = {p.name for p in (data / "train").iterdir()}
    assert linked == {f"{n}.stem.mp4" for n in train + valid}
    assert {p.name for p in (data / "test").iterdir()} == {f"{n}.stem.mp4" for n in test}
    assert all((data / "train" / f"{n}.stem.mp4").is_symlink() for n in train)
    # a second call changes nothing
    assert common.link_real_songs(data, songs=folder) == (train, valid, test)
