"""``curate repair``: swapped files trade labels, leaks are subtracted, nothing else changes."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from scipy import signal
from typer.testing import CliRunner

from curate.cli import app
from curate.common.errors import StemcurateError
from curate.data import audio
from curate.data.schema import read_manifest, write_manifest
from curate.repair import RepairConfig, file_labels, fit_leak, repair_dataset, repair_track, swapped_pairs
from curate.scan import scan
from curate.simulate.corrupt import make_leak

runner = CliRunner()
SR = 44100


def _snr(ref: np.ndarray, est: np.ndarray) -> float:
    return float(
        10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / max(np.sum((ref - est).astype(np.float64) ** 2), 1e-30))
    )


def test_fit_leak_recovers_a_filtered_delayed_copy():
    rng = np.random.default_rng(0)
    n = 5 * SR
    receiver = 0.1 * rng.standard_normal((2, n))
    source = 0.1 * rng.standard_normal((2, n))
    sos = signal.butter(2, 1500, "low", fs=SR, output="sos")
    leak = make_leak(source, 0.1, -8.0, 200, sos)
    pred = fit_leak(receiver + leak, source)
    # a least-squares filter also fits chance correlation: about taps / (channels x samples) of the
    # receiver's energy, -26 dB here, -18 dB relative to the leak
    assert _snr(leak, pred) > 15
    assert _snr(receiver, receiver + leak - pred) > 23  # the receiver is what is left (from 8 dB)
    assert _snr(receiver, receiver - fit_leak(receiver, source)) > 23  # an independent source predicts ~nothing


def _files(rows):
    return pd.DataFrame(rows, columns=["track", "subset", "stem", "predicted", "share", "label_score"])


def test_only_two_cycles_of_doubted_files_are_swaps():
    f = _files(
        [
            ("a", "train", "vocals", "other", 1.0, 0.05),
            ("a", "train", "other", "vocals", 0.8, 0.1),  # a swap
            ("a", "train", "bass", "bass", 1.0, 0.9),
            ("a", "train", "drums", "drums", 1.0, 0.9),
            ("b", "train", "vocals", "drums", 1.0, 0.05),
            ("b", "train", "drums", "drums", 1.0, 0.9),  # a replacement
            ("c", "train", "vocals", "bass", 1.0, 0.05),
            ("c", "train", "bass", "other", 1.0, 0.05),
            ("c", "train", "other", "vocals", 1.0, 0.05),
            ("d", "train", "vocals", "other", 1.0, 0.05),
            ("d", "train", "other", "vocals", 1.0, 0.8),  # other's label is not doubted
            ("e", "train", "vocals", "other", 0.5, 0.05),
            ("e", "train", "other", "vocals", 1.0, 0.05),  # vocals file undecided
        ]
    )
    assert swapped_pairs(f) == [("train", "a", "other", "vocals")]
    assert swapped_pairs(f, config=RepairConfig(swap_max_label_score=0.0)) == []


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """4 synth tracks; track 0 has vocals and other swapped, track 1 a drums leak in bass (-8 dB, 3 ms,
    low-passed), track 2 a vocals file that looks like drums while drums look right. Scored by hand."""
    from curate.simulate.synth import synth_dataset

    base = tmp_path_factory.mktemp("repair")
    synth_dataset(base / "clean", tracks=4, test_tracks=1, seconds=6.0, seed=2)
    shutil.copytree(base / "clean", base / "noisy")
    tracks = sorted(p.name for p in (base / "clean" / "train").iterdir())
    t0, t1 = (base / "noisy" / "train" / tracks[i] for i in (0, 1))
    v, o = audio.read(t0 / "vocals.wav")[0], audio.read(t0 / "other.wav")[0]
    audio.write(t0 / "vocals.wav", o, SR, subtype="FLOAT")
    audio.write(t0 / "other.wav", v, SR, subtype="FLOAT")
    bass, drums = audio.read(t1 / "bass.wav")[0], audio.read(t1 / "drums.wav")[0]
    rms = float(np.sqrt(np.mean(bass.astype(np.float64) ** 2)))
    leak = make_leak(drums, rms, -8.0, int(0.003 * SR), signal.butter(2, 2500, "low", fs=SR, output="sos"))
    audio.write(t1 / "bass.wav", (bass + leak).astype(np.float32), SR, subtype="FLOAT")
    scan(base / "noisy", output=base / "raw.parquet", score=None)
    m = read_manifest(base / "raw.parquet")
    f = m.frame.copy()
    f["quality"], f["label_score"], f["predicted_stem"] = 0.9, 0.9, f["stem"]
    for track, stem, pred in (
        (tracks[0], "vocals", "other"),
        (tracks[0], "other", "vocals"),
        (tracks[2], "vocals", "drums"),
    ):
        sel = (f["track"] == track) & (f["stem"] == stem)
        f.loc[sel, ["quality", "label_score", "predicted_stem"]] = [0.05, 0.05, pred]
    write_manifest(f, base / "scored.parquet", root=m.root)
    return base, tracks


def test_repair_dataset(damaged, tmp_path):
    base, tracks = damaged
    m = read_manifest(base / "scored.parquet")
    files = file_labels(m.frame)
    assert len(files) == 4 * len(tracks) and swapped_pairs(files) == [("train", tracks[0], "other", "vocals")]
    table = repair_dataset(m, tmp_path / "fixed")
    acts = table[table["action"] != "leak kept"]
    relabel = acts[acts["action"] == "relabel"]
    assert set(zip(relabel["track"], relabel["stem"], relabel["new_stem"])) == {
        (tracks[0], "vocals", "other"),
        (tracks[0], "other", "vocals"),
    }
    leaks = acts[acts["action"] == "leak"]
    assert (tracks[1], "bass", "drums") in set(zip(leaks["track"], leaks["stem"], leaks["source_stem"]))
    hit = leaks[(leaks["track"] == tracks[1]) & (leaks["stem"] == "bass")].iloc[0]
    assert -11 < hit["leak_db"] < -5 and abs(hit["removed_db"] - -8.0) < 1.5
    for t in tracks:
        fixed = {
            s: audio.read(tmp_path / "fixed" / "train" / t / f"{s}.wav")[0]
            for s in ("vocals", "bass", "drums", "other")
        }
        for s, x in fixed.items():
            clean = audio.read(base / "clean" / "train" / t / f"{s}.wav")[0]
            noisy = audio.read(base / "noisy" / "train" / t / f"{s}.wav")[0]
            source = {"vocals": "other", "other": "vocals"}.get(s, s) if t == tracks[0] else s
            removed = leaks.loc[(leaks["track"] == t) & (leaks["stem"] == source), "removed_db"]
            if t == tracks[1] and s == "bass":
                assert _snr(clean, noisy) < 10 and _snr(clean, x) > 20, (_snr(clean, noisy), _snr(clean, x))
            elif len(removed):  # the leak model saw a leak in a clean file: no more changed than it measured
                assert _snr(clean, x) > -10 * np.log10(np.sum(10 ** (removed / 10))) - 1.0, (t, s, _snr(clean, x))
            else:  # the swap undone, everything else as it was
                assert _snr(clean, x) > 60, (t, s, _snr(clean, x))
        mix = audio.read(tmp_path / "fixed" / "train" / t / "mixture.wav")[0]
        assert np.allclose(mix, sum(fixed.values()), atol=1e-6)
    assert (tmp_path / "fixed" / "test").is_dir()  # other subsets are copied
    assert len(pd.read_parquet(tmp_path / "fixed" / "repairs.parquet")) == len(table)
    with pytest.raises(StemcurateError, match="not empty"):
        repair_dataset(m, tmp_path / "fixed")
    with pytest.raises(StemcurateError, match="must not overwrite"):
        repair_dataset(m, base / "noisy")


def test_cli(damaged, tmp_path):
    base, tracks = damaged
    res = runner.invoke(app, ["repair", str(base / "scored.parquet"), str(tmp_path / "out"), "--no-relabel"])
    assert res.exit_code == 0, res.output
    log = pd.read_parquet(tmp_path / "out" / "repairs.parquet")
    assert "relabel" not in set(log["action"]) and "leak" in set(log["action"])
    res = runner.invoke(app, ["repair", str(base / "raw.parquet"), str(tmp_path / "x")])  # no scores
    assert res.exit_code == 2 and "no scores" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "x").exists()


def test_leaks_both_ways_are_kept_not_subtracted():
    """A tonal bass line leaks into vocals and vocals into bass: a long filter of the vocals file
    predicts the bass from its own copy in there and would take almost all of it (measured: bass
    from 12 dB to 0.6 dB SNR); the guard keeps that leak and no file gets worse."""
    rng = np.random.default_rng(0)
    n = 48 * 5000
    freq = np.repeat(rng.uniform(50, 120, 12), n // 12)
    bass = 0.2 * np.sin(2 * np.pi * np.cumsum(freq) / SR)[None].repeat(2, 0)
    gate = np.repeat(rng.random(24) > 0.3, n // 24)[None]
    vocals = (
        0.1
        * signal.sosfilt(signal.butter(4, [300, 3000], "band", fs=SR, output="sos"), rng.standard_normal((2, n)))
        * gate
    )
    drums = 0.05 * rng.standard_normal((2, n)) * np.repeat(rng.random(48) > 0.5, n // 48)[None]
    other = 0.08 * signal.sosfilt(
        signal.butter(2, [500, 5000], "band", fs=SR, output="sos"), rng.standard_normal((2, n))
    )
    rms = lambda x: float(np.sqrt(np.mean(x**2)))  # noqa: E731
    leaky = {
        "vocals": vocals + make_leak(bass, rms(vocals), -15.0, 200, None),
        "bass": bass + make_leak(vocals, rms(bass), -12.0, 100, signal.butter(2, 549, "high", fs=SR, output="sos")),
        "drums": drums,
        "other": other,
    }
    stems = {k: v.astype(np.float32) for k, v in leaky.items()}
    assert _snr(bass, stems["bass"] - fit_leak(stems["bass"], stems["vocals"])) < 3  # what an unguarded repair does
    fixed, actions = repair_track(stems, SR)
    assert any(a["stem"] == "bass" and a["source_stem"] == "vocals" and a["action"] == "leak kept" for a in actions), (
        actions
    )
    clean = {"vocals": vocals, "bass": bass, "drums": drums, "other": other}
    for s in clean:
        assert _snr(clean[s], fixed[s]) >= _snr(clean[s], stems[s]) - 0.5, s


def test_export_relabel_writes_the_swapped_files_under_their_true_names(damaged, tmp_path):
    """The swap repair would trade (track 0's vocals and other) is written under the true names, the
    rest as it is (no masking, no leak subtraction); export.json lists the moves."""
    import json

    from curate.export import EXPORT_FILE, ExportConfig, export

    base, tracks = damaged
    out = export(base / "scored.parquet", tmp_path / "relabel", config=ExportConfig(format="relabel"))
    assert sorted((r["track"], r["stem"], r["written_as"]) for r in out.relabelled) == [
        (tracks[0], "other", "vocals"),
        (tracks[0], "vocals", "other"),
    ]
    assert json.loads((tmp_path / "relabel" / EXPORT_FILE).read_text())["relabelled"] == out.relabelled
    for t in tracks:
        for s in ("vocals", "bass", "drums", "other"):
            got = audio.read(tmp_path / "relabel" / "train" / t / f"{s}.wav")[0]
            want = base / ("clean" if t == tracks[0] else "noisy") / "train" / t / f"{s}.wav"
            assert np.array_equal(got, audio.read(want)[0]), (t, s)  # track 1 keeps its leak, track 2 its vocals
