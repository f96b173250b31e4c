"""Where ``pipelines separate`` puts each song: a function of the input's own path and of what the output
folder already holds, never of the other inputs of a run."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from curate.common.errors import StemcurateError
from pipelines.separate import MARKER, find_inputs, marker_source, read_input, separate_files


class Identity:
    """A stand-in model whose one target is its input: each output says which song it came from."""

    sample_rate, targets, channels = 44100, ["vocals"], 2

    def __call__(self, audio, sr):
        return {"vocals": torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))}


def _song(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    x = 0.1 * np.random.default_rng(seed).standard_normal((4410 * (3 + seed % 4), 2))
    sf.write(path, x, 44100, format="MP3" if path.suffix.lower() == ".mp3" else None)
    return path


def _run(inputs, out, root):
    return separate_files(inputs, out, Identity(), root=root, bits="float")


def _layout(out: Path) -> dict[str, str]:
    """Each song folder of ``out`` and the input its marker names (relative to the input folder)."""
    return {str(m.parent.relative_to(out)): Path(marker_source(m.parent)).name for m in out.rglob(MARKER)}


def _holds_its_input(out: Path) -> None:
    for m in out.rglob(MARKER):
        src = Path(marker_source(m.parent))
        y, _ = sf.read(m.parent / "vocals.wav", dtype="float32")
        x = read_input(src)[0]
        assert y.T.shape == x.shape and np.array_equal(y.T, x), (m.parent, src)


def test_adding_removing_or_reordering_inputs_never_moves_an_existing_songs_stems(tmp_path):
    songs = tmp_path / "in"
    for i, name in enumerate(["demo.wav", "demo.mp3", "Take.wav", "Take.WAV", "a.wav", "a/mixture.wav", "b.wav"]):
        _song(songs / name, i)
    out = tmp_path / "sep"
    first = _run(find_inputs(songs), out, songs)
    expected = {
        "demo_wav": "demo.wav",
        "demo_mp3": "demo.mp3",
        "Take_wav": "Take.wav",
        "Take_WAV": "Take.WAV",
        "a_wav": "a.wav",
        "a_mixture_wav": "mixture.wav",
        "b": "b.wav",
    }
    assert _layout(out) == expected and first.separated == 7
    assert {f.name for _, f, _ in first.renamed} == set(expected) - {"b"}
    _holds_its_input(out)

    # one more input of a name already taken, one of a new name, in another order
    _song(songs / "demo.flac", 11)
    _song(songs / "c.mp3", 12)
    _run(find_inputs(songs)[::-1], out, songs)
    assert _layout(out) == {**expected, "demo_flac": "demo.flac", "c": "c.mp3"}
    _holds_its_input(out)

    # one input alone: its stems stay where they are, not in the bare 'demo'
    report = _run([songs / "demo.wav"], out, songs)
    assert [(f.name, why) for _, f, why in report.renamed] == [("demo_wav", "its stems are there from an earlier run")]
    assert not (out / "demo").exists()


def test_a_folder_holding_another_songs_stems_is_never_written_with_these(tmp_path):
    out = tmp_path / "sep"
    one, two, three = (_song(tmp_path / d / "song.wav", i) for i, d in enumerate(["x", "y", "z"]))
    _run([one], out, one.parent)
    _run([two], out, two.parent)  # same name, other file: OUT/song holds x's stems
    assert _layout(out) == {"song": "song.wav", "song_wav": "song.wav"}
    assert marker_source(out / "song") == str(one.resolve()) and marker_source(out / "song_wav") == str(two.resolve())
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(StemcurateError, match=r"song.wav: its output folder .*song_wav is also that of .*y/song.wav"):
        _run([three], out, three.parent)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    _run([two, one], out, tmp_path)  # both again, from another root: each into its own folder
    assert marker_source(out / "song") == str(one.resolve()) and marker_source(out / "song_wav") == str(two.resolve())
    _holds_its_input(out)


def test_a_case_insensitive_disk_does_not_merge_two_songs(tmp_path):
    """On a disk that folds case, ``Take_wav`` and ``Take_WAV`` are one folder (here a link makes them one): the
    second song is skipped with the reason, not written over the first."""
    songs, out = tmp_path / "in", tmp_path / "sep"
    _song(songs / "Take.wav", 1), _song(songs / "Take.WAV", 2)
    (out / "Take_wav").mkdir(parents=True)
    (out / "Take_WAV").symlink_to("Take_wav")
    report = _run(find_inputs(songs), out, songs)
    assert report.separated == 1 and len(report.failed) == 1
    skipped, why = report.failed[0]
    assert why.startswith(f"its output folder {out / 'Take_'}") and "holds the stems of" in why
    _holds_its_input(out / "Take_wav")


def test_recycle_bins_and_index_folders_are_not_songs(tmp_path):
    """A share's recycle bin holds deleted songs, its index folders files named like songs: neither is an input."""
    songs = tmp_path / "in"
    keep = [_song(songs / "a.wav", 1), _song(songs / "album" / "b.mp3", 2)]
    for litter in ("#recycle/old.wav", "@eaDir/a.wav", "album/@eaDir/b.mp3", "$RECYCLE.BIN/x/c.wav", ".Trash/d.wav"):
        _song(songs / litter, 3)
    assert find_inputs(songs) == keep


def test_one_songs_folder_never_lies_in_anothers_and_a_song_keeps_its_folder_from_any_root(tmp_path):
    """``sub.wav`` beside ``sub/vocals.wav`` put the second song's folder inside the first's (``OUT/sub/vocals/``
    next to ``OUT/sub/vocals.wav``); ``sub/vocals.wav.wav`` stopped the run half-way. And a song separated once
    from ``in`` went to a second folder when separated again from ``in/sub``."""
    songs, out = tmp_path / "in", tmp_path / "sep"
    inner = [_song(songs / "sub" / "vocals.wav", 1), _song(songs / "sub" / "vocals.wav.wav", 2)]
    _song(songs / "sub.wav", 3)
    report = _run(find_inputs(songs), out, songs)
    assert report.separated == 3 and not report.failed
    layout = _layout(out)
    assert layout["sub_wav"] == "sub.wav" and sorted(layout) == ["sub/vocals", "sub/vocals.wav", "sub_wav"]
    _holds_its_input(out)
    again = _run([inner[0]], out, songs / "sub")  # from another root: the folder it has
    assert [(f.relative_to(out).as_posix(), why) for _, f, why in again.renamed] == [
        ("sub/vocals", "its stems are there from an earlier run")
    ]
    assert sorted(_layout(out)) == sorted(layout)
    # a new song whose folder would lie in an earlier song's folder is refused before any work
    other = tmp_path / "other"
    _song(other / "sub_wav" / "x.wav", 4)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    with pytest.raises(StemcurateError, match=r"x.wav: its output folder .*sub_wav/x is also that of .*sub.wav"):
        _run(find_inputs(other), out, other)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


def test_a_songs_folder_is_the_same_whichever_inputs_are_given_with_it(tmp_path):
    """In a fresh output folder, ``demo.wav`` given alone goes where it goes when its whole folder is given:
    ``demo.mp3`` beside it on disk counts whether it is separated now or not. A MUSDB18-HQ track folder is one
    song, its mixture: the stems beside it are not separated (they nested song folders in the track's)."""
    songs = tmp_path / "in"
    for i, name in enumerate(["demo.wav", "demo.mp3", "solo.wav", "sub.wav", "sub/inner.wav"]):
        _song(songs / name, i)
    for i, stem in enumerate(["mixture", "vocals", "bass"]):
        _song(songs / "track1" / f"{stem}.wav", 10 + i)
    whole = tmp_path / "whole"
    _run(find_inputs(songs), whole, songs)
    expected = {
        "demo_wav": "demo.wav",
        "demo_mp3": "demo.mp3",
        "solo": "solo.wav",
        "sub_wav": "sub.wav",
        "sub/inner": "inner.wav",
        "track1": "mixture.wav",
    }
    assert _layout(whole) == expected
    where = {marker_source(whole / k): k for k in expected}
    for i, src in enumerate(find_inputs(songs)):  # one at a time, each into a fresh folder
        one = tmp_path / f"one{i}"
        _run([src], one, songs)
        assert _layout(one) == {where[str(src.resolve())]: src.name}, src
    _holds_its_input(whole)


def test_songs_beside_a_mixture_links_and_stems_that_gain_a_mixture(tmp_path):
    """Five shapes a new user found: songs beside a ``mixture.wav`` at the input's top were taken for a track's
    stems and silently skipped; a link to a file shared its target's marker (the rerun was refused); a track's
    mixture given alone missed ``t.wav`` beside its folder; ``Mixture.WAV`` was half a track; a folder of
    stems that gained a mixture was refused as "files separate did not write"."""
    songs = tmp_path / "in"
    for i, name in enumerate(["mixture.wav", "song1.wav", "song2.flac", "vocals.wav", "A/t.wav", "A/t/mixture.wav"]):
        _song(songs / name, i)
    for i, name in enumerate(["A/t/vocals.wav", "M/Mixture.WAV", "M/vocals.wav"]):
        _song(songs / name, 10 + i)
    (songs / "link.wav").symlink_to("song1.wav")
    found = {p.relative_to(songs).as_posix() for p in find_inputs(songs)}
    assert found == {
        "mixture.wav",
        "song1.wav",
        "song2.flac",
        "link.wav",
        "A/t.wav",
        "A/t/mixture.wav",
        "M/Mixture.WAV",
    }
    out = tmp_path / "sep"
    for _ in range(2):  # the same run twice: every song keeps its folder
        assert not _run(find_inputs(songs), out, songs).failed
        assert _layout(out) == {
            "in": "mixture.wav",
            "song1": "song1.wav",
            "song2": "song2.flac",
            "link": "link.wav",
            "A/t_wav": "t.wav",
            "A/t_mixture_wav": "mixture.wav",
            "M": "Mixture.WAV",
        }
    alone = tmp_path / "alone"  # a track's mixture alone: where the folder run puts it
    separate_files([songs / "A" / "t" / "mixture.wav"], alone, Identity(), bits="float")
    assert _layout(alone) == {"t_mixture_wav": "mixture.wav"}
    stems = tmp_path / "stems"  # a folder of stems separated song by song, then a mixture appears
    for i, name in enumerate(["s/vocals.wav", "s/drums.wav"]):
        _song(stems / name, 20 + i)
    _run(find_inputs(stems), tmp_path / "out2", stems)
    _song(stems / "s" / "mixture.wav", 22)
    report = _run(find_inputs(stems), tmp_path / "out2", stems)
    assert [(f.name, why) for _, f, why in report.renamed] == [
        ("s_mixture_wav", f"{tmp_path / 'out2' / 's'} holds the song folders of other inputs")
    ]
    _holds_its_input(tmp_path / "out2")
