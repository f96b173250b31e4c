import numpy as np
import pandas as pd

from curate.scoring.context import alignment_z, foreign_log_lr


def _onsets(rng, n=258, rate=0.08):
    env = np.zeros(n)
    env[rng.random(n) < rate] = 1.0
    return env


def test_aligned_stems_score_high_and_foreign_ones_low():
    rng = np.random.default_rng(0)
    rows, envs = [], []
    for t in range(12):
        for w in range(3):
            beat = _onsets(rng)  # shared onsets of this track and window
            for s in ("vocals", "bass", "drums", "other"):
                own = beat * rng.uniform(0.5, 1.0) + 0.3 * _onsets(rng, rate=0.05) + 0.05 * rng.random(len(beat))
                rows.append((f"t{t}", s, w * 258))
                envs.append(own)
    frame = pd.DataFrame(rows, columns=["track", "stem", "start"])
    env = np.array(envs, dtype=np.float16)
    foreign = (frame.track == "t3") & (frame.stem == "vocals")
    env[foreign.to_numpy()] = np.array(
        [_onsets(rng) for _ in range(int(foreign.sum()))], dtype=np.float16
    )  # another song
    z, z_null = alignment_z(frame, env, seed=1)
    assert np.median(z[~foreign.to_numpy()]) > 5
    assert np.all(z[foreign.to_numpy()] < 3)
    llr = foreign_log_lr(z, z_null)
    assert np.all(llr[foreign.to_numpy()] > 0) and np.median(llr[~foreign.to_numpy()]) < 0
    assert np.abs(llr).max() <= 3.0


def test_a_unit_partly_replaced_reads_as_foreign_by_its_least_aligned_piece():
    """A unit whose last 3/4 come from another song keeps the track's onsets in its first quarter; scored
    whole, that quarter still aligns it with its siblings, scored by its least aligned half it does not.
    Clean units stay aligned either way."""
    rng = np.random.default_rng(0)
    rows, envs = [], []
    for t in range(12):
        beat = _onsets(rng)
        for s in ("vocals", "bass", "drums", "other"):
            rows.append((f"t{t}", s, 0))
            envs.append(beat * rng.uniform(0.5, 1.0) + 0.3 * _onsets(rng, rate=0.05) + 0.05 * rng.random(len(beat)))
    frame = pd.DataFrame(rows, columns=["track", "stem", "start"])
    env = np.array(envs, dtype=np.float16)
    part = ((frame.track == "t3") & (frame.stem == "bass")).to_numpy()
    env[part, 64:] = _onsets(rng)[64:]  # three quarters of the unit from another song
    z1, _ = alignment_z(frame, env, seed=1, pieces=1)
    z2, null2 = alignment_z(frame, env, seed=1, pieces=2)
    assert z1[part][0] > 3 and z2[part][0] < 2, (z1[part], z2[part])
    assert np.median(z2[~part]) > 4 and np.median(null2) < 1


def test_no_siblings_or_single_track_gives_no_evidence():
    frame = pd.DataFrame({"track": ["a", "b"], "stem": ["vocals", "vocals"], "start": [0, 0]})
    z, z_null = alignment_z(frame, np.random.default_rng(0).random((2, 50)).astype(np.float16))
    assert np.isnan(z).all()
    assert (foreign_log_lr(z, z_null) == 0).all()


def test_a_part_that_aligns_less_is_judged_against_its_own_kind():
    """Legato or sparse parts (a sung line, a pad) align with their siblings less than drums do, yet
    more than chance. Judged against one aligned distribution pooled over all stems, many of them read
    as foreign; fitted per stem, they read as their own kind, and foreign content still stands out."""
    rng = np.random.default_rng(0)
    n = 150
    aligned = ["drums", "bass", "other"]
    labels = np.array([s for s in aligned for _ in range(n)] + ["vocals"] * n + ["vocals"] * 20)
    z = np.r_[
        rng.normal(7.0, 1.5, 3 * n), rng.normal(2.5, 1.0, n), rng.normal(0.0, 1.0, 20)
    ]  # the last 20: foreign vocals
    z_null = rng.normal(0.0, 1.0, len(z))
    pooled = foreign_log_lr(z, z_null)
    own = foreign_log_lr(z, z_null, groups=labels)
    clean_vocals, foreign = slice(3 * n, 4 * n), slice(4 * n, None)
    assert np.mean(pooled[clean_vocals] > 0) > 0.25  # the pooled fit leans foreign on 3 in 10 of them
    assert np.mean(own[clean_vocals] > 0) < 0.12
    assert np.mean(own[foreign] > 0) > 0.6  # foreign vocals still lean foreign
    assert np.mean(own[: 3 * n] > 0) < 0.05


def _alignment_z_listing_the_others(frame, env, *, seed=0):
    """The earlier form of alignment_z: it listed every other track's units for every unit (quadratic)."""
    from curate.scoring.context import N_NEGATIVES, _peak_corr, _standardise

    x = _standardise(env)
    rng = np.random.default_rng(seed)
    n = len(frame)
    z, z_null = np.full(n, np.nan), np.full(n, np.nan)
    codes, _ = pd.factorize(frame["track"].to_numpy())
    for _, rows in frame.groupby(["track", "start"], sort=False).indices.items():
        rows = np.asarray(rows)
        if len(rows) < 2:
            continue
        others = np.flatnonzero(codes != codes[rows[0]])
        for i in rows:
            sib = rows[rows != i]
            need = N_NEGATIVES + len(sib)
            neg = rng.choice(others, size=need, replace=len(others) < need)
            null_c = _peak_corr(x[i][None], x[neg[:N_NEGATIVES]])
            mu, sigma = null_c.mean(), null_c.std() + 1e-3
            z[i] = ((_peak_corr(x[i][None], x[sib]) - mu) / sigma).max()
            z_null[i] = ((_peak_corr(x[i][None], x[neg[N_NEGATIVES:]]) - mu) / sigma).max()
    return z, z_null


def test_linear_negative_draw_equals_listing_the_other_tracks():
    """Issue 23, item 4: the negatives are drawn as positions among the other tracks' units without
    listing them; the same generator state gives the same units, so every z is bit-equal to the
    quadratic form, with tracks interleaved in the frame, few tracks (draws with replacement) and many."""
    rng = np.random.default_rng(3)
    for n_tracks, shuffle in ((2, False), (3, True), (40, True)):
        rows = [
            (f"t{t}", s, w)
            for t in range(n_tracks)
            for w in range(int(rng.integers(1, 5)))
            for s in ("vocals", "bass", "drums", "other")[: int(rng.integers(1, 5))]
        ]
        frame = pd.DataFrame(rows, columns=["track", "stem", "start"])
        if shuffle:
            frame = frame.sample(frac=1.0, random_state=1).reset_index(drop=True)
        env = rng.random((len(frame), 60)).astype(np.float16)
        got, ref = alignment_z(frame, env, seed=7, pieces=1), _alignment_z_listing_the_others(frame, env, seed=7)
        for a, b in zip(got, ref):
            assert np.array_equal(a, b, equal_nan=True), n_tracks
        assert np.isfinite(got[0]).any()
