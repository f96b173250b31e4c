import numpy as np
from scipy import signal

from curate.scantrack import without_separated_sources
from curate.scoring.quality import quality, reasons, separated_factor
from curate.scoring.separated import mixture_lock
from curate.scoring.spectra import stft
from curate.simulate.masking import separated_estimate

SR = 44100


def _band_noise(rng, lo, hi, seconds=4.0):
    """Stereo noise band-passed to ``lo``-``hi`` Hz with a slow random envelope (a stand-in for a stem)."""
    n = int(seconds * SR)
    sos = signal.butter(4, [lo, hi], "band", fs=SR, output="sos")
    x = signal.sosfilt(sos, rng.standard_normal((2, n)), axis=1)
    env = np.repeat(rng.uniform(0.2, 1.0, int(seconds * 8)), n // int(seconds * 8) + 1)[:n]
    return x * env / np.sqrt(np.mean(x**2))


def _stems(rng):
    # overlapping bands: every stem shares part of its spectrum with the others
    return {
        "bass": _band_noise(rng, 40, 2000),
        "drums": _band_noise(rng, 100, 12000),
        "other": _band_noise(rng, 300, 8000),
    }


def _locks(stems):
    n = next(iter(stems.values())).shape[1]
    spectra = {k: stft(v, SR) for k, v in stems.items()}
    return mixture_lock(spectra, {k: np.array([[0, n // 2], [n // 2, n]]) for k in stems}), spectra


def test_a_separators_output_keeps_the_mixture_phase_and_recorded_stems_do_not():
    rng = np.random.default_rng(0)
    stems = _stems(rng)
    locks, _ = _locks(stems)
    for name, lock in locks.items():
        assert lock.shape == (2,) and np.all(lock < 0.6), (name, lock)  # independent phases
    rest = stems["drums"] + stems["other"]
    for power, bins, frames, floor in ((1.0, 1, 1, 0.0), (0.5, 9, 5, 0.05), (2.0, 15, 9, 0.1)):
        est, _ = separated_estimate(
            stems["bass"], rest, power=power, smooth_bins=bins, smooth_frames=frames, floor=floor
        )
        locks, _ = _locks({**stems, "bass": est})
        assert np.all(locks["bass"] > 0.75), (power, bins, frames, floor, locks["bass"])
        assert np.all(locks["drums"] < 0.65) and np.all(locks["other"] < 0.65), locks  # the siblings are not blamed
        assert float(separated_factor(locks["bass"].min())) < 0.5 < float(separated_factor(locks["drums"].max()))


def test_a_sibling_that_doubles_the_stem_does_not_lock_it():
    rng = np.random.default_rng(2)
    stems = _stems(rng)
    stems["vocals"] = _band_noise(rng, 200, 6000)
    stems["other"] = 0.5 * stems["bass"] + 0.1 * stems["other"]  # a copy of the bass (a duplicated part)
    locks, spectra = _locks(stems)
    assert np.all(locks["bass"] < 0.6) and np.all(locks["drums"] < 0.6), locks
    # against the whole mixture (nobody left out), the copy would lock the bass
    n = stems["bass"].shape[1]
    pair = mixture_lock({k: spectra[k] for k in ("bass", "other")}, {k: np.array([[0, n]]) for k in ("bass", "other")})
    assert float(pair["bass"][0]) > 0.8


def test_leaks_read_from_a_separated_stem_are_dropped_from_its_siblings():
    rng = np.random.default_rng(1)
    stems = _stems(rng)
    est, _ = separated_estimate(
        stems["bass"], stems["drums"] + stems["other"], power=1.0, smooth_bins=3, smooth_frames=3, floor=0.02
    )
    stems["bass"] = est
    spectra = {k: stft(v, SR) for k, v in stems.items()}
    # drums read bass at -10 dB and other at -30 dB; bass reads drums at -12 dB
    bleed = {
        "drums": (np.array([-10.0], np.float32), ["bass"], np.array([[0.1, 0.001]])),  # others: bass, other
        "bass": (np.array([-12.0], np.float32), ["drums"], np.array([[10**-1.2, 0.0]])),  # others: drums, other
        "other": (np.array([-80.0], np.float32), [None], np.array([[0.0, 0.0]])),  # others: bass, drums
    }
    whole = {k: np.array([[0, stems[k].shape[1]]]) for k in stems}
    lock = {k: float(v[0]) for k, v in mixture_lock(spectra, whole).items()}
    out = without_separated_sources(bleed, lock)
    assert out["drums"][1] == ["other"] and abs(float(out["drums"][0][0]) + 30.0) < 1e-4
    assert out["bass"][1] == ["drums"] and abs(float(out["bass"][0][0]) + 12.0) < 1e-4  # its own reading stays
    assert out["other"][1] == [None] and float(out["other"][0][0]) == -80.0
    clean = dict(stems)
    clean["bass"] = _band_noise(np.random.default_rng(5), 40, 2000)
    clean_lock = {k: float(v[0]) for k, v in mixture_lock({k: stft(v, SR) for k, v in clean.items()}, whole).items()}
    assert without_separated_sources(bleed, clean_lock) is bleed
    assert without_separated_sources(bleed, {**lock, "bass": float("nan")}) is bleed  # not measured: kept


def test_quality_and_reason_of_a_separated_fragment_and_keep_separated():
    import pandas as pd

    frame = pd.DataFrame(
        dict(
            stem=["bass", "drums"],
            quality=np.nan,
            label_score=[0.98, 0.98],
            predicted_stem=["bass", "drums"],
            bleed_db=[-30.0, -30.0],
            bleed_stem=[None, None],
            separation_db=[np.nan, np.nan],
            mixture_lock=[0.95, 0.2],
        )
    )
    args = (frame["label_score"], frame["bleed_db"], frame["separation_db"], frame["mixture_lock"])
    frame["quality"] = quality(*args)
    assert frame["quality"][0] < 0.01 and frame["quality"][1] > 0.95
    why = reasons(frame, 0.7)
    assert why["kind"].tolist() == ["separated", None] and "predicted kind: separated" in why["reason"][0]
    kept = quality(*args, keep_separated=True)
    assert kept[0] > 0.95
    frame["quality"] = kept
    assert reasons(frame, 0.7, keep_separated=True)["kind"].tolist() == [None, None]
    assert float(separated_factor(np.nan)) > 0.999  # not measured: no penalty


def test_a_lock_near_its_midpoint_is_named_as_the_reason_not_the_label():
    import pandas as pd

    from curate.scoring.quality import LOCK_MID

    frame = pd.DataFrame(
        dict(
            stem=["vocals", "bass"],
            label_score=[0.99, 0.55],
            predicted_stem=["vocals", "bass"],
            bleed_db=[-40.0, -40.0],
            bleed_stem=[None, None],
            separation_db=[np.nan, np.nan],
            mixture_lock=[LOCK_MID, LOCK_MID - 0.1],
        )
    )
    frame["quality"] = quality(frame["label_score"], frame["bleed_db"], frame["separation_db"], frame["mixture_lock"])
    assert (frame["quality"] < 0.7).all()
    why = reasons(frame, 0.7)
    assert why["kind"].tolist() == ["separated", "label"], why  # the lowest factor is blamed
    assert "label uncertain" not in why["reason"][0] and "lock 0.66" in why["reason"][0]


def test_a_bleed_reason_says_why_the_leak_is_read_into_this_stem():
    import pandas as pd

    frame = pd.DataFrame(
        dict(
            stem=["vocals", "bass", "other"],
            quality=[0.01, 0.01, 0.01],
            label_score=[0.99, 0.99, 0.99],
            predicted_stem=["vocals", "bass", "other"],
            bleed_db=[-12.0, -12.0, -12.0],
            bleed_stem=["drums", "other", "drums"],
            bleed_delay_ms=[4.02, 0.0, np.nan],
        )
    )
    why = reasons(frame, 0.7)["reason"].tolist()
    assert why[0] == "drums bleed at -12 dB (a copy of drums arriving 4.0 ms later)"
    assert why[1].startswith("other bleed at -12 dB (at zero delay: other holds the shared content whole")
    assert why[2] == "drums bleed at -12 dB"  # no delay recorded: no direction said


def test_a_delayed_leak_of_the_recording_a_separated_stem_was_cut_from_is_kept():
    """The bass is a separator's output, and the bass recording also leaked into the drums 5 ms later (a
    microphone in the room), at -6 dB re the drums. The drums' reading of the bass at that delay is a leak;
    the other siblings' readings at zero delay are the masked pieces the estimate holds of them, not leaks."""
    from curate.scantrack import bleed_and_locks
    from curate.scoring.bleed import BleedConfig

    rng = np.random.default_rng(3)
    stems = _stems(rng)
    stems["vocals"] = _band_noise(rng, 200, 6000)
    recorded_bass = stems["bass"]
    rest = stems["drums"] + stems["other"] + stems["vocals"]
    stems["bass"], _ = separated_estimate(recorded_bass, rest, power=2.0, smooth_bins=3, smooth_frames=3, floor=0.0)
    delay = int(0.005 * SR)
    sos = signal.butter(2, 1500, "low", fs=SR, output="sos")
    leak = np.concatenate([np.zeros((2, delay)), signal.sosfilt(sos, recorded_bass, axis=1)[:, :-delay]], axis=1)
    leak *= 10 ** (-6 / 20) * np.sqrt(np.mean(stems["drums"] ** 2) / np.mean(leak**2))  # 1/5 of the sum: -7 dB
    stems["drums"] = stems["drums"] + leak
    n = stems["bass"].shape[1]
    spectra = {k: stft(v, SR) for k, v in stems.items()}
    bounds = {k: np.array([[0, n // 2], [n // 2, n]]) for k in stems}
    bleed, locks = bleed_and_locks(spectra, bounds)
    assert set(locks) == set(stems) and all(v.shape == (2,) for v in locks.values())
    assert float(separated_factor(locks["bass"].min())) < 0.5  # the bass is read as separated
    db, src, _, delay_ms = bleed["drums"]
    assert src == ["bass", "bass"] and np.all(np.abs(db + 7) < 3), (db, src)
    others = ["bass", "other", "vocals"]
    assert np.all(np.abs(delay_ms[:, others.index("bass")] - 5.0) < 0.5), delay_ms
    for stem in ("other", "vocals"):  # no sibling is blamed for the pieces the mask holds of it
        assert "bass" not in bleed[stem][1], (stem, bleed[stem])
    # every reading from the separated stem dropped: the drums' real leak is lost too
    strict = bleed_and_locks(spectra, bounds, BleedConfig(separated_delay_ms=1e9))[0]
    assert strict["drums"][1] == [None, None], strict["drums"]
