import json

import numpy as np
import soundfile as sf

from curate.simulate.synth import synth_dataset, synth_track

STEMS = ("vocals", "bass", "drums", "other")


def _read(folder, name):
    x, sr = sf.read(folder / f"{name}.wav", dtype="int16", always_2d=True)
    return x.T.astype(np.int64), sr


def test_layout_and_exact_mixture(synth_dir):
    tracks = sorted(p.name for p in (synth_dir / "train").iterdir())
    assert len(tracks) == 3 and len(list((synth_dir / "test").iterdir())) == 1
    for t in tracks:
        folder = synth_dir / "train" / t
        mix, sr = _read(folder, "mixture")
        assert sr == 44100 and mix.shape == (2, 7 * 44100)
        total = sum(_read(folder, s)[0] for s in STEMS)
        np.testing.assert_array_equal(mix, total)  # exact sum of the 16-bit stems
    meta = json.loads((synth_dir / "synth.json").read_text())
    assert meta["seed"] == 3 and len(meta["tracks"]) == 4


def test_deterministic_for_a_seed(tmp_path):
    synth_dataset(tmp_path / "a", tracks=1, seconds=3, seed=7)
    synth_dataset(tmp_path / "b", tracks=1, seconds=3, seed=7)
    synth_dataset(tmp_path / "c", tracks=1, seconds=3, seed=8)
    a = (tmp_path / "a/train/synth007-000/vocals.wav").read_bytes()
    assert a == (tmp_path / "b/train/synth007-000/vocals.wav").read_bytes()
    c = (tmp_path / "c/train/synth008-000/vocals.wav").read_bytes()
    assert a != c


def _descriptors(x, sr=44100):
    """Spectral centroid (Hz), flatness and share of energy below 250 Hz of the active frames."""
    x = x.astype(np.float64).mean(axis=0)
    frames = np.lib.stride_tricks.sliding_window_view(x, 2048)[::1024] * np.hanning(2048)
    p = np.abs(np.fft.rfft(frames, axis=1)) ** 2 + 1e-12
    active = p.sum(1) > 1e-3 * p.sum(1).max()
    p = p[active]
    f = np.fft.rfftfreq(2048, 1 / sr)
    centroid = float(np.median((p * f).sum(1) / p.sum(1)))
    flatness = float(np.median(np.exp(np.log(p).mean(1)) / p.mean(1)))
    low = float(p[:, f < 250].sum() / p.sum())
    return centroid, flatness, low


def test_stems_sound_like_their_labels():
    """Across random tracks: bass is low, drums are noisy, vocals and other sit in between."""
    d = {s: [] for s in STEMS}
    for i in range(4):
        stems, _ = synth_track(f"t{i}", 6.0, np.random.default_rng([11, i]))
        for s in STEMS:
            d[s].append(_descriptors(stems[s]))
    med = {s: np.median(np.array(v), axis=0) for s, v in d.items()}
    assert med["bass"][2] > 0.8  # bass energy is below 250 Hz
    assert med["bass"][0] < 400
    assert all(med[s][2] < 0.3 for s in ("vocals", "other"))
    assert med["drums"][1] > 5 * max(med[s][1] for s in ("vocals", "bass", "other"))  # noise-like
    assert 300 < med["vocals"][0] < 3000 and 200 < med["other"][0] < 3000


def test_some_stems_have_silence_gaps(synth_dir):
    gaps = [t["gaps"] for t in json.loads((synth_dir / "synth.json").read_text())["tracks"]]
    assert any(g for g in gaps)
    track = next(t for t in json.loads((synth_dir / "synth.json").read_text())["tracks"] if t["gaps"])
    for stem, spans in track["gaps"].items():
        x, sr = _read(synth_dir / "train" / track["name"], stem)
        a, b = spans[0]
        assert not x[:, int(a * sr) + 100 : int(b * sr) - 100].any()  # times are rounded to 1 ms
