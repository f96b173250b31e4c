import re

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from curate.common.errors import StemcurateError
from curate.data.schema import read_corruptions
from curate.simulate.corrupt import LEAK_KINDS, corrupt_dataset, room_response
from curate.simulate.masking import separated_estimate
from curate.simulate.truth import fragment_truth

STEMS = ("vocals", "bass", "drums", "other")


def _read(path):
    x, _ = sf.read(path, dtype="float64", always_2d=True)
    return x.T


@pytest.fixture(scope="module")
def corrupted(synth_dir, tmp_path_factory):
    dst = tmp_path_factory.mktemp("noisy") / "d"
    truth = corrupt_dataset(synth_dir, dst, mislabel_rate=0.6, bleed_rate=0.5, seed=4)
    return synth_dir, dst, truth


def test_truth_table_matches_what_was_written(corrupted):
    src, dst, truth = corrupted
    assert set(truth["kind"]) >= set(LEAK_KINDS) and len(truth) >= 4
    pd.testing.assert_frame_equal(
        read_corruptions(dst / "corruptions.parquet").reset_index(drop=True),
        truth.reset_index(drop=True),
        check_dtype=False,
    )
    for (track, stem), rows in truth.groupby(["track", "stem"]):
        out = _read(dst / "train" / track / f"{stem}.wav")
        clean = _read(src / "train" / track / f"{stem}.wav")
        kinds = set(rows["kind"])
        leaks = rows[rows["kind"].isin(LEAK_KINDS)]
        if kinds == {"swap"}:
            partner = rows["source_stem"].iloc[0]
            np.testing.assert_allclose(out, _read(src / "train" / track / f"{partner}.wav"), atol=1e-6)
        elif kinds == {"partial"}:
            a, b = int(rows["start"].iloc[0]), int(rows["end"].iloc[0])
            np.testing.assert_allclose(out[:, :a], clean[:, :a], atol=1e-6)
            np.testing.assert_allclose(out[:, b:], clean[:, b:], atol=1e-6)
            assert np.abs(out[:, a + 500 : b - 500] - clean[:, a + 500 : b - 500]).max() > 1e-3
        elif kinds == {"replace"}:
            assert np.abs(out - clean).max() > 1e-3
            assert rows["source_track"].iloc[0] != track
        elif len(kinds) == 1 and kinds <= set(LEAK_KINDS):
            added = out - clean
            kind = kinds.pop()
            for leak in leaks.itertuples():  # each kind's ranges
                if kind == "bleed":
                    assert -20.0 <= leak.leak_db <= -6.0 and 0.5 <= leak.delay_ms <= 10.0
                elif kind == "console":
                    assert -24.0 <= leak.leak_db <= -10.0 and leak.delay_ms == 0.0 and leak.filter.startswith("console")
                else:
                    assert 1.0 <= leak.delay_ms <= 20.0 and "RT60" in leak.filter
            if kind == "room":  # every sibling at once, -18...-6 dB in all
                assert set(leaks["source_stem"]) == set(STEMS) - {stem}
                assert -18.0 - 0.1 <= 10 * np.log10(np.sum(10 ** (leaks["leak_db"].to_numpy() / 10))) <= -6.0 + 0.1
            else:
                assert 1 <= len(leaks) <= 2
            # total added energy matches the stated levels
            expect = 10 * np.log10(np.sum(10 ** (leaks["leak_db"].to_numpy() / 10)))
            measured = 10 * np.log10(np.mean(added**2) / np.mean(clean**2))
            assert abs(measured - expect) < 3.0  # independent leaks add in power, give or take their correlation


def test_untouched_stems_and_exact_mixture(corrupted):
    src, dst, truth = corrupted
    touched = set(zip(truth["track"], truth["stem"]))
    for folder in (dst / "train").iterdir():
        stems = {s: _read(folder / f"{s}.wav") for s in STEMS}
        np.testing.assert_allclose(_read(folder / "mixture.wav"), sum(stems.values()), atol=1e-6)
        for s in STEMS:
            if (folder.name, s) not in touched:
                np.testing.assert_allclose(stems[s], _read(src / "train" / folder.name / f"{s}.wav"), atol=1e-6)
    assert (dst / "test").is_dir()  # other subsets are copied


def test_deterministic_and_bad_rates(synth_dir, tmp_path):
    a = corrupt_dataset(synth_dir, tmp_path / "a", seed=9)
    b = corrupt_dataset(synth_dir, tmp_path / "b", seed=9)
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(StemcurateError, match="--mislabel-rate"):
        corrupt_dataset(synth_dir, tmp_path / "c", mislabel_rate=1.5)
    with pytest.raises(StemcurateError, match="not empty"):
        corrupt_dataset(synth_dir, tmp_path / "a")


def test_fragment_truth_rules():
    frame = pd.DataFrame(
        {
            "track": "t",
            "stem": ["vocals"] * 3 + ["bass"],
            "start": [0, 100, 300, 0],
            "end": [100, 200, 400, 100],
            "path": "train/t/x.wav",
        }
    )
    corr = pd.DataFrame(
        {
            "track": ["t", "t"],
            "stem": ["vocals", "bass"],
            "kind": ["partial", "swap"],
            "start": [80, 0],
            "end": [210, 100],
        }
    )
    truth = fragment_truth(frame, corr)
    # 20% overlap: ambiguous; 100%: partial; none: clean; swap: whole stem
    assert truth["corrupted"].tolist()[1:] == [True, False, True]
    assert pd.isna(truth["corrupted"].iloc[0])
    assert truth["corruption_kind"].fillna("clean").tolist() == ["partial<min_overlap", "partial", "clean", "swap"]


def test_room_response_decay_and_direct_to_reverberant_ratio():
    sr = 8000
    ir = room_response(np.random.default_rng(0), sr, 2, rt60_s=0.5, drr_db=6.0)
    assert ir.shape == (2, 4000) and np.all(ir[:, 0] == 1.0)
    tail = ir[:, 1:]
    np.testing.assert_allclose(10 * np.log10(np.sum(tail**2, axis=1)), -6.0, atol=1e-9)  # energy re the direct path
    early, late = np.mean(tail[:, :400] ** 2), np.mean(tail[:, 1600:2000] ** 2)  # 0.2 s apart: 60 dB per 0.5 s
    assert abs(10 * np.log10(early / late) - 24.0) < 2.0
    assert abs(np.corrcoef(tail[0], tail[1])[0, 1]) < 0.1  # the two channels hear different reflections


def test_bad_destinations_and_seed(synth_dir, tmp_path):
    import shutil

    src = tmp_path / "src"
    shutil.copytree(synth_dir, src)
    with pytest.raises(StemcurateError, match="inside the source"):
        corrupt_dataset(src, src / "test" / "out")
    with pytest.raises(StemcurateError, match="differ from the source"):
        corrupt_dataset(src, src)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(StemcurateError, match="not a folder"):
        corrupt_dataset(src, tmp_path / "afile")
    with pytest.raises(StemcurateError, match="--seed"):
        corrupt_dataset(src, tmp_path / "o", seed=-1)
    assert sorted(p.name for p in (src / "test").iterdir()) == sorted(p.name for p in (synth_dir / "test").iterdir())


def test_nothing_drawn_gives_an_exact_copy_and_an_empty_truth(synth_dir, tmp_path):
    """Rates of 0 (or a small dataset at low rates) draw no corruption: that was an internal error
    about a missing 'track' column and no output; it is a copy with an empty truth table."""
    truth = corrupt_dataset(synth_dir, tmp_path / "o", mislabel_rate=0.0, bleed_rate=0.0)
    assert len(truth) == 0 and len(read_corruptions(tmp_path / "o" / "corruptions.parquet")) == 0
    assert sorted(p.name for p in (tmp_path / "o" / "train").iterdir()) == sorted(
        p.name for p in (synth_dir / "train").iterdir()
    )


def test_an_error_leaves_no_half_copy_and_mono_stems_are_mixed(synth_dir, tmp_path):
    import shutil

    src = tmp_path / "src"
    shutil.copytree(synth_dir, src)
    tracks = sorted((src / "train").iterdir())
    x = _read(tracks[0] / "bass.wav")
    sf.write(tracks[0] / "bass.wav", x.mean(axis=0), 44100, subtype="FLOAT")  # mono
    y = _read(tracks[-1] / "drums.wav")
    y[0, 1000] = np.nan
    sf.write(tracks[-1] / "drums.wav", y.T, 44100, subtype="FLOAT")
    dst = tmp_path / "out"
    with pytest.raises(StemcurateError, match="drums.wav: 1 NaN/inf samples"):
        corrupt_dataset(src, dst, bleed_rate=1.0)
    assert not dst.exists() and not list(tmp_path.glob(".out*"))  # nothing half-written, and a rerun is not refused
    sf.write(tracks[-1] / "drums.wav", np.nan_to_num(y).T, 44100, subtype="FLOAT")
    corrupt_dataset(src, dst, bleed_rate=1.0)
    out = dst / "train" / tracks[0].name
    stems = {s: _read(out / f"{s}.wav") for s in STEMS}
    np.testing.assert_allclose(
        _read(out / "mixture.wav"), sum(stems.values()), atol=1e-6
    )  # the mono bass in both channels


def test_separated_masks_of_a_stem_and_its_rest_add_up_to_the_mixture():
    rng = np.random.default_rng(0)
    stem, rest = rng.standard_normal((2, 44100)), rng.standard_normal((2, 44100)) * 0.3
    settings = dict(power=1.3, smooth_bins=5, smooth_frames=3, floor=0.0)
    a, a_rest = separated_estimate(stem, rest, **settings)
    b, b_rest = separated_estimate(rest, stem, **settings)
    np.testing.assert_allclose(a + b, stem + rest, atol=1e-6)  # ratio masks of the two sum to one
    np.testing.assert_allclose(a_rest + (b - b_rest), rest, atol=1e-6)  # the rest is shared out, nothing lost
    assert 0.05 < np.mean(a_rest**2) / np.mean(rest**2) < 0.95  # a soft mask keeps some of the rest


def test_separated_floor_sets_the_level_of_the_remains():
    t = np.arange(3 * 44100) / 44100
    stem = np.stack([np.sin(2 * np.pi * 440 * t)] * 2)
    rest = np.stack([0.5 * np.sin(2 * np.pi * 5000 * t)] * 2)
    est, remains = separated_estimate(stem, rest, power=2.0, smooth_bins=1, smooth_frames=1, floor=0.1)
    inner = slice(4096, -4096)
    level = 10 * np.log10(np.mean(remains[:, inner] ** 2) / np.mean(rest[:, inner] ** 2))
    assert abs(level + 20.0) < 0.5  # the stem is silent at 5 kHz: the mask sits at its floor there
    error = est[:, inner] - stem[:, inner] - 0.1 * rest[:, inner]
    assert 10 * np.log10(np.mean(stem[:, inner] ** 2) / np.mean(error**2)) > 25


def test_separated_kind_holds_the_stem_and_masked_remains_of_its_siblings(synth_dir, tmp_path):
    truth = corrupt_dataset(synth_dir, tmp_path / "s", mislabel_rate=0.5, bleed_rate=0.5, seed=1, kinds=["separated"])
    assert len(truth) and set(truth["kind"]) == {"separated"}
    for r in truth.itertuples():
        folder = synth_dir / "train" / r.track
        out, clean = _read(tmp_path / "s" / "train" / r.track / f"{r.stem}.wav"), _read(folder / f"{r.stem}.wav")
        siblings = r.source_stem.split(",")
        assert sorted(siblings) == sorted(set(STEMS) - {r.stem}) and (r.start, r.end) == (0, clean.shape[1])
        rest = sum(_read(folder / f"{s}.wav") for s in siblings)
        # the written stem is the mask estimate the stated settings give (rounded to two decimals in the text)
        m = re.fullmatch(r"mask power ([\d.]+), smoothed (\d+) bins x (\d+) frames, floor ([\d.]+)", r.filter)
        power, bins, frames, floor = float(m[1]), int(m[2]), int(m[3]), float(m[4])
        est, remains = separated_estimate(clean, rest, power=power, smooth_bins=bins, smooth_frames=frames, floor=floor)
        assert 10 * np.log10(np.sum(out**2) / np.sum((out - est) ** 2)) > 25
        assert 10 * np.log10(np.sum((out - clean) ** 2) / np.sum(clean**2)) > -40  # not the clean stem
        level = 20 * np.log10(np.sqrt(np.mean(remains**2) / np.mean(clean**2)))
        assert r.leak_db < 0 and abs(level - r.leak_db) < 0.5
    single = tmp_path / "single" / "train" / "t0"
    single.mkdir(parents=True)
    (single / "bass.wav").write_bytes((synth_dir / "train" / r.track / "bass.wav").read_bytes())
    with pytest.raises(StemcurateError, match="every track has one stem"):
        corrupt_dataset(tmp_path / "single", tmp_path / "z", mislabel_rate=1.0, kinds=["separated"])
    assert not (tmp_path / "z").exists()
    with pytest.raises(StemcurateError, match="unknown kind"):
        corrupt_dataset(synth_dir, tmp_path / "x", kinds=["separate"])
    with pytest.raises(StemcurateError, match="at least one kind"):
        corrupt_dataset(synth_dir, tmp_path / "y", kinds=[])


def test_a_swap_in_one_stem_tracks_names_what_it_needs(synth_dir, tmp_path):
    """Where every track holds only vocals, a swap has no partner and falls back to a replacement from
    another class, which no track has: the error says so, naming the swap, the track and the stem."""
    import shutil

    src = tmp_path / "src"
    for t in sorted((synth_dir / "train").iterdir())[:2]:
        (src / "train" / t.name).mkdir(parents=True)
        shutil.copy(t / "vocals.wav", src / "train" / t.name / "vocals.wav")
    with pytest.raises(
        StemcurateError,
        match=r"'swap' of 'vocals' \(no stem to swap with: a replacement\) in '.+' "
        r"needs a sounding stem other than 'vocals'; none found",
    ):
        corrupt_dataset(src, tmp_path / "o", mislabel_rate=1.0, bleed_rate=0.0, kinds=("swap",))
    assert not (tmp_path / "o").exists()
