"""The leak model of one receiving stem and one candidate source over one fragment's STFT frames.

A leak is a filtered, delayed copy of another stem of the same track. For a receiving stem ``i``
and a candidate source ``j``, over the STFT frames of one fragment:

1. the cross-spectrum ``G(f) = sum_t X_i X_j*`` gives, after PHAT whitening, a generalised
   cross-correlation whose peak is the delay of ``j`` inside ``i``. Independent sources show no
   peak; a leak shows one at its (positive) propagation delay. A peak at a negative delay means
   ``i`` leaks into ``j``, not the other way round, and counts as no leak into ``i`` (unless a
   positive delay has a peak of its own: leaks both ways; then only what ``j`` still predicts of
   ``i`` once the reverse path is taken out of ``j`` counts, since a pitched source repeats its peak
   a pitch period away, where it reads as the reverse leak). Delays beyond half a hop (6 ms at
   44.1 kHz) are measured on the cross-spectrum of frames one hop apart, ``sum_t X_i[t] X_j[t-1]*``:
   on frames of the same time a 20-ms delay leaves a quarter of the window's coherence;
2. the evidence that the coherence is a leak path is graded 0-1 from that peak's height and from
   the phase linearity of the coherent bins at that delay (their phases line up on the leak's
   delay for a filtered copy, not for two instruments that merely play the same notes in sync;
   measured at the chosen delay only, so that the reverse leak's linearity cannot pass the gate);
3. a Wiener FIR filter of ``taps`` taps placed around that delay predicts ``i`` from ``j``
   (normal equations from the Welch auto/cross-correlations, lag-window corrected); the predicted
   energy over the energy of ``i``, times the evidence grade, is the leak fraction of ``j`` in ``i``.

The track-level reading (cross-validated blocks, direction, ``bleed_db``) and the settings of both
(:class:`~curate.scoring.bleed.BleedConfig`) are :mod:`curate.scoring.bleed`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy.linalg import matmul_toeplitz, solve_toeplitz

if TYPE_CHECKING:  # the settings live with the track-level reading that owns them
    from curate.scoring.bleed import BleedConfig


def hann_lag_window(n_fft: int) -> np.ndarray:
    """Hann-window autocorrelation normalised to 1 at lag 0, on the circular lag axis ``(n_fft,)``."""
    w = np.hanning(n_fft + 1)[:-1]
    ww = np.correlate(w, w, "full")[n_fft - 1 :]
    ww = ww / ww[0]
    half = n_fft // 2
    return np.concatenate([ww[: half + 1], ww[1:half][::-1]])


def cell_sums(
    specs: list[np.ndarray], edges: np.ndarray, *, with_late: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per cell between consecutive ``edges``: power per stem ``(S, F, cells)``, cross-spectra
    ``(S, S, F, cells)`` of the same frames and ``late`` cross-spectra ``(S, S, F, cells)`` of frames one
    hop apart (``late[i, j]`` sums ``X_i[t] X_j[t - 1]*``: ``j`` one hop earlier; zeros unless ``with_late``)."""
    n_s, n_f = len(specs), specs[0].shape[1]
    n_c = len(edges) - 1
    power = np.zeros((n_s, n_f, n_c))
    cross = np.zeros((n_s, n_s, n_f, n_c), dtype=np.complex128)
    late = np.zeros((n_s, n_s, n_f, n_c), dtype=np.complex128)
    for c in range(n_c):
        a, b = edges[c], edges[c + 1]
        if b <= a:
            continue
        blk = [s[:, :, a:b] for s in specs]
        a1 = max(a, 1)
        now = [s[:, :, a1:b] for s in specs]
        before = [s[:, :, a1 - 1 : b - 1] for s in specs]
        for i in range(n_s):
            power[i, :, c] = np.einsum("cft,cft->f", blk[i], np.conj(blk[i])).real
            for j in range(n_s):
                if with_late and j != i and b > a1:
                    late[i, j, :, c] = np.einsum("cft,cft->f", now[i], np.conj(before[j]))
            for j in range(i + 1, n_s):
                g = np.einsum("cft,cft->f", blk[i], np.conj(blk[j]))
                cross[i, j, :, c] = g
                cross[j, i, :, c] = np.conj(g)
    return power, cross, late


def _explained(
    col: np.ndarray, r_ij: np.ndarray, lag: int, config: BleedConfig, n_fft: int, e_i: float, test=None
) -> float:
    """Share of ``i``'s energy that the Wiener filter around ``lag`` removes: fitted on the correlations
    ``col`` (of ``j``) and ``r_ij``, scored on the same ones, or on those of ``test`` = ``(col, r_ij, e_i)``."""
    idx = np.arange(lag - config.pre, lag - config.pre + config.taps) % n_fft
    b = r_ij[idx]
    try:
        h = solve_toeplitz(col, b)
    except (np.linalg.LinAlgError, ValueError):
        return 0.0
    if test is None:
        return float(np.clip(h @ b / e_i, 0.0, 1.0))
    t_col, t_rij, t_e = test
    if t_e <= 0:
        return 0.0
    # ||x_i||^2 - ||x_i - h * x_j||^2 on the held-out frames: 2 h.r_ij - h' R_jj h
    gain = 2 * h @ t_rij[idx] - h @ matmul_toeplitz(t_col, h)
    return float(np.clip(gain / t_e, 0.0, 1.0))


def _toeplitz_column(r_jj: np.ndarray, taps: int) -> np.ndarray:
    """First ``taps`` lags of ``j``'s autocorrelation, with a tiny ridge that keeps the Toeplitz system well posed."""
    col = r_jj[:taps].copy()
    col[0] *= 1.0 + 1e-6
    return col


def _correlations(
    g: np.ndarray, p_j: np.ndarray, p_i: np.ndarray, n_fft: int, lw: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """Lag-window corrected ``(r_jj[:n_fft], r_ij, e_i)`` from summed spectra."""
    r_ij = np.fft.irfft(g, n=n_fft) / lw
    r_jj = np.fft.irfft(p_j, n=n_fft) / lw
    e_i = float(np.fft.irfft(p_i, n=n_fft)[0])
    return r_jj, r_ij, e_i


def _whitened(g: np.ndarray, n_fft: int) -> np.ndarray:
    """PHAT-whitened cross-correlation ``(n_fft,)`` on the circular lag axis, over its median."""
    c = np.abs(np.fft.irfft(g / (np.abs(g) + 1e-30), n=n_fft))
    return c / (np.median(c) + 1e-30)


def _late_shift(late: tuple | None, delay: int, hop: int) -> int:
    """``hop`` when ``delay`` (samples) is measured on the cross-spectra of frames one hop apart, else 0."""
    return hop if late is not None and delay > hop // 2 else 0


def leak_fraction(
    g: np.ndarray,
    p_j: np.ndarray,
    p_i: np.ndarray,
    n_fft: int,
    sample_rate: int,
    config: BleedConfig,
    lag_window: np.ndarray | None = None,
    halves: tuple | None = None,
    late: tuple | None = None,
    hop: int = 0,
    explain_away: bool = True,
) -> tuple[float, int]:
    """Leak of ``j`` in ``i`` from summed spectra: cross ``g`` = sum X_i X_j* ``(F,)``, powers ``p_j``, ``p_i``
    ``(F,)``.

    ``late``: ``(sum X_i[t] X_j[t-1]*, sum X_j[t] X_i[t-1]*)`` over the same frames, frames ``hop``
    samples apart: delays beyond ``hop / 2`` are measured on them, where the two frames still share
    most of their window (on frames of the same time, a 20-ms delay leaves a quarter of the coherence).
    ``halves``: the same sums over two disjoint halves of the frames, ``((g_a, pj_a, pi_a[, late_a]),
    (g_b, pj_b, pi_b[, late_b]))``; with ``config.cross_validate`` the fraction is the smaller of the in-sample
    one and the mean of each half's filter scored on the other half. A leak path is one linear filter
    through the fragment; two parts that play along (same notes, locked to the kick) fit a filter by
    chance on some frames that predicts little on others.
    Returns ``(fraction of i's energy predicted from j, delay in samples)``; 0 when the
    coherence points the other way (``i`` leaking into ``j``).
    """
    lw = hann_lag_window(n_fft) if lag_window is None else lag_window
    e_i = np.fft.irfft(p_i, n=n_fft)[0]
    if e_i <= 0 or not np.any(p_j > 0):
        return 0.0, 0
    hi = min(int(config.max_delay_ms * sample_rate / 1000), n_fft // 2 - config.taps)
    lo = max(1, int(config.min_delay_ms * sample_rate / 1000))
    phat = _whitened(g, n_fft)
    if late is not None:  # delays beyond half a hop: on frames one hop apart
        d = np.arange(hop // 2 + 1, hi + 1)
        phat[d] = _whitened(late[0], n_fft)[(d - hop) % n_fft]
        phat[n_fft - d] = _whitened(late[1], n_fft)[(d - hop) % n_fft]
    pos, neg = np.arange(lo, hi + 1), n_fft - np.arange(lo, hi + 1)
    zero = np.r_[0:lo, n_fft - lo + 1 : n_fft]
    kp, kn, kz = pos[phat[pos].argmax()], neg[phat[neg].argmax()], zero[phat[zero].argmax()]

    # a peak at a negative delay means i leaks into j: no leak of j into i, unless a positive
    # delay has a peak of its own (leaks both ways)
    best = max(phat[kp], phat[kn], phat[kz])
    own_peak = phat[kp] >= config.peak_full and phat[kp] >= config.reverse_ratio * best
    if explain_away and config.explain_away and phat[kn] >= best > phat[kp] and (phat[kp] >= 0.5 * best or own_peak):
        # i leaks into j (the strongest peak), and a positive delay has a peak too: a second path, or an
        # alias of the reverse one (a periodic source repeats its peak a pitch period away). Only what
        # j still predicts of i once the reverse path is taken out of j counts.
        rest = _without_path(int(n_fft - kn), g, p_j, p_i, late, n_fft, hop, lw, config)
        if rest is None:
            return 0.0, 0
        away = [rest[0]] + ([rest[1](h) for h in halves] if halves is not None else [])
        return leak_fraction(
            *away[0], n_fft, sample_rate, config, lw, halves=tuple(away[1:]) or None, explain_away=False
        )
    if phat[kp] >= 0.5 * best or own_peak:
        tau = int(kp)
    elif phat[kz] >= best:
        tau = int(kz if kz <= n_fft // 2 else kz - n_fft)
    else:
        return 0.0, -int(n_fft - kn)
    shift = _late_shift(late, tau, hop)

    def cross(sums):  # the cross-spectrum the delay is measured on
        return sums[3][0] if shift else sums[0]

    def corr(sums):
        r_jj, r_ij, e = _correlations(cross(sums), sums[1], sums[2], n_fft, lw)
        return _toeplitz_column(r_jj, config.taps), np.roll(r_ij, shift), e

    main = (g, p_j, p_i, late)
    col, r_ij, _ = corr(main)
    frac = _explained(col, r_ij, tau, config, n_fft, e_i)
    if config.cross_validate and halves is not None and frac > 0:
        (ca, ia, ea), (cb, ib, eb) = [corr(h) for h in halves]
        if ea > 0 and eb > 0 and ca[0] > 0 and cb[0] > 0:
            cv = 0.5 * (
                _explained(ca, ia, tau, config, n_fft, ea, test=(cb, ib, eb))
                + _explained(cb, ib, tau, config, n_fft, eb, test=(ca, ia, ea))
            )
            frac = min(frac, cv)
    # evidence that the coherence is a leak path: a sharp whitened cross-correlation peak, or
    # coherent bins whose phases line up on one delay (two instruments on the same notes do neither)
    gm = cross(main)
    msc = np.maximum(np.abs(gm) ** 2 / (p_i * p_j + 1e-30) - config.msc_bias, 0.0)
    lin_curve = np.roll(
        np.abs(np.fft.irfft(msc * gm / (np.abs(gm) + 1e-30), n=n_fft)) * n_fft / (2 * msc.sum() + 1e-30), shift
    )
    near = np.arange(tau - config.pre, tau + config.pre + 1) % n_fft  # at the chosen delay, not the reverse one
    linearity = float(lin_curve[near].max()) if msc.sum() > 0 else 0.0
    gate = max(
        np.clip((phat[tau % n_fft] - config.peak_none) / (config.peak_full - config.peak_none), 0.0, 1.0),
        np.clip((linearity - config.lin_none) / (config.lin_full - config.lin_none), 0.0, 1.0),
    )
    return float(gate * frac), tau


def path_response(
    delay: int, g, p_j, p_i, late, n_fft: int, hop: int, lw: np.ndarray, config: BleedConfig
) -> np.ndarray | None:
    """Frequency response ``(F,)`` of the leak path of ``j`` into ``i``: the Wiener filter of ``config.taps``
    taps around ``delay`` samples that predicts ``i`` from ``j`` (measured on the frames one hop apart
    when the delay is long, see :func:`_late_shift`). None when the filter cannot be fitted."""
    shift = _late_shift(late, delay, hop)
    r_jj, r_ij, _ = _correlations(late[0] if shift else g, p_j, p_i, n_fft, lw)
    r_ij = np.roll(r_ij, shift)
    idx = np.arange(delay - config.pre, delay - config.pre + config.taps) % n_fft
    try:
        h = solve_toeplitz(_toeplitz_column(r_jj, config.taps), r_ij[idx])
    except (np.linalg.LinAlgError, ValueError):
        return None
    impulse = np.zeros(n_fft)
    np.add.at(impulse, idx, h)
    return np.fft.rfft(impulse)


def _without_path(delay: int, g, p_j, p_i, late, n_fft: int, hop: int, lw: np.ndarray, config: BleedConfig):
    """Sums of ``i`` and of ``j`` less the Wiener prediction of ``j`` from ``i`` around ``delay`` samples (the
    path of ``i`` into ``j``): ``(g', p_j', p_i)`` and a function that applies the same filter to the
    sums of part of the frames. The filter's response multiplies each frame (a short filter). None when
    the filter cannot be fitted."""
    resp = path_response(delay, np.conj(g), p_i, p_j, None if late is None else late[::-1], n_fft, hop, lw, config)
    if resp is None:
        return None

    def away(sums):  # X_j - H X_i in place of X_j
        g_, pj_, pi_ = sums[:3]
        return g_ - np.conj(resp) * pi_, np.maximum(pj_ + np.abs(resp) ** 2 * pi_ - 2 * np.real(g_ * resp), 0.0), pi_

    return away((g, p_j, p_i)), away
