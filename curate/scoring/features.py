"""The ``features`` embedder: hand-made descriptors that tell drums, bass, vocals and other apart.

Per STFT frame (46 ms, hop 12 ms at 44.1 kHz), vectorised over the whole stem, then averaged over
each fragment's active frames (frames within 50 dB of the stem's loudest):

* log-mel spectral shape (40 bands, level-normalised): mean and standard deviation over time;
* spectral centroid, bandwidth, roll-off (85 %) in log Hz and flatness in log, mean and std;
* percussive share from a median-filter harmonic/percussive split (HPSS) of a 96-band mel spectrogram;
* pitch salience / harmonicity: peak of the autocorrelation of the magnitude spectrum over
  partial spacings of 40-1300 Hz, and the log spacing at that peak;
* energy shares below 120, 250 and 500 Hz and above 4 kHz;
* spectral flux mean and std, onset rate (flux peaks per second);
* stereo width (side / (mid + side) energy) and inter-channel correlation;
* loudness dynamics (std of frame log-energy) and the active-frame fraction;
* polyphony (entropy of the pitch-class distribution) and register (lowest partial within 20 dB
  of the frame's peak, log Hz), mean and std.

No descriptor depends on the absolute level, so gains and fades do not change the label.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from curate.scoring.spectra import StemSpectrum, frame_bounds, mel_filterbank, segment_sums

N_MELS = 40
N_MELS_HPSS = 96
EPS = 1e-10


def _names() -> list[str]:
    names = [f"mel{i:02d}_mean" for i in range(N_MELS)] + [f"mel{i:02d}_std" for i in range(N_MELS)]
    for k in (
        "centroid",
        "bandwidth",
        "rolloff",
        "flatness",
        "percussive",
        "harmonicity",
        "spacing",
        "flux",
        "chroma_entropy",
        "lowest_partial",
    ):
        names += [f"{k}_mean", f"{k}_std"]
    names += [
        "share_lt120",
        "share_lt250",
        "share_lt500",
        "share_gt4k",
        "onset_rate",
        "width",
        "ch_corr",
        "energy_std",
        "active",
    ]
    return names


FEATURE_NAMES = _names()


def _frame_descriptors(spec: StemSpectrum) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame values ``(n_desc, frames)``, their squares' companions, and activity weights ``(frames,)``."""
    p = spec.power()  # (F, T)
    f = spec.freqs.astype(np.float32)
    total = p.sum(axis=0) + EPS
    log_e = np.log10(total)
    active = (log_e > log_e.max() - 5.0).astype(np.float32)  # within 50 dB of the loudest frame

    fb = mel_filterbank(N_MELS, spec.n_fft, spec.sample_rate)
    mel = fb @ p
    log_mel = np.log10(mel + EPS) - np.log10(mel.sum(axis=0) + EPS)[None]  # spectral shape

    pn = p / total[None]
    centroid = (pn * f[:, None]).sum(axis=0)
    bandwidth = np.sqrt(np.maximum((pn * (f[:, None] - centroid[None]) ** 2).sum(axis=0), 0.0))
    cum = np.cumsum(pn, axis=0)
    rolloff = f[np.minimum((cum < 0.85).sum(axis=0), len(f) - 1)]
    flatness = np.mean(np.log(p + EPS), axis=0) - np.log(np.mean(p, axis=0) + EPS)

    fbh = mel_filterbank(N_MELS_HPSS, spec.n_fft, spec.sample_rate)
    melh = fbh @ p
    harm = ndimage.median_filter(melh, size=(1, 17), mode="nearest")
    perc = ndimage.median_filter(melh, size=(9, 1), mode="nearest")
    percussive = (perc**2).sum(axis=0) / ((perc**2).sum(axis=0) + (harm**2).sum(axis=0) + EPS)

    # harmonicity: autocorrelation of the magnitude spectrum up to ~5 kHz along frequency
    top = int(np.searchsorted(f, 5000.0))
    mag = np.sqrt(p[:top])
    mag = mag - mag.mean(axis=0, keepdims=True)
    n = 1 << int(np.ceil(np.log2(2 * top)))
    acf = np.fft.irfft(np.abs(np.fft.rfft(mag, n=n, axis=0)) ** 2, axis=0)[:top]
    acf = acf / (acf[0:1] + EPS)
    df = f[1] - f[0]
    lo, hi = max(2, int(40 / df)), max(3, min(top - 1, int(1300 / df)))
    seg = acf[lo:hi]
    harmonicity = seg.max(axis=0)
    spacing = np.log2((lo + seg.argmax(axis=0)) * df)

    # polyphony: entropy of the frame's pitch-class distribution (one note and its overtones
    # concentrate on few classes, chords spread); register: lowest partial within 20 dB of the peak
    semis = 12 * np.log2(np.maximum(f, 1.0) / 440.0)
    band = (f >= 55.0) & (f <= 2000.0)
    chroma = np.zeros((12, p.shape[1]), np.float32)
    np.add.at(chroma, np.round(semis[band]).astype(int) % 12, p[band])
    cp = chroma / (chroma.sum(axis=0, keepdims=True) + EPS)
    chroma_entropy = -(cp * np.log(cp + EPS)).sum(axis=0)
    low = (f >= 25.0) & (f <= 4000.0)
    strong = p[low] >= 0.01 * p[low].max(axis=0, keepdims=True)
    lowest_partial = np.log2(f[low][np.argmax(strong, axis=0)] + 20.0)

    log_mel_flux = np.log10(mel + EPS * 1e3)
    flux = np.concatenate([[0.0], np.maximum(np.diff(log_mel_flux, axis=1), 0.0).mean(axis=0)]).astype(np.float32)
    local = ndimage.median_filter(flux, size=int(round(spec.sample_rate / spec.hop)), mode="nearest")
    peaks = (flux > local + 0.1) & (flux >= np.roll(flux, 1)) & (flux >= np.roll(flux, -1))
    onset = peaks.astype(np.float32) * (spec.sample_rate / spec.hop)

    shares = [p[f < c].sum(axis=0) / total for c in (120.0, 250.0, 500.0)] + [p[f > 4000.0].sum(axis=0) / total]

    if spec.spec.shape[0] >= 2:
        left, right = spec.spec[0], spec.spec[1]
        side = (np.abs(left - right) ** 2).sum(axis=0) / 4
        mid = (np.abs(left + right) ** 2).sum(axis=0) / 4
        width = side / (side + mid + EPS)
        lr = np.real(left * np.conj(right)).sum(axis=0)
        corr = lr / np.sqrt((np.abs(left) ** 2).sum(axis=0) * (np.abs(right) ** 2).sum(axis=0) + EPS)
    else:
        width = np.zeros_like(total)
        corr = np.ones_like(total)

    paired = np.concatenate(
        [
            log_mel,
            np.stack(
                [
                    np.log2(centroid + 20),
                    np.log2(bandwidth + 20),
                    np.log2(rolloff + 20),
                    flatness,
                    percussive,
                    harmonicity,
                    spacing,
                    flux,
                    chroma_entropy,
                    lowest_partial,
                ]
            ),
        ]
    ).astype(np.float32)
    single = np.stack(shares + [onset, width, corr]).astype(np.float32)
    return paired, single, np.stack([log_e, active]).astype(np.float32)


def fragment_features(spec: StemSpectrum, bounds: np.ndarray) -> np.ndarray:
    """Descriptors of each fragment ``[start, end)`` (samples) of one stem: float32 ``(n, len(FEATURE_NAMES))``."""
    fb = frame_bounds(bounds, spec.hop, spec.frames)
    if len(fb) == 0:
        return np.zeros((0, len(FEATURE_NAMES)), np.float32)
    paired, single, (log_e, active) = _frame_descriptors(spec)
    w = active[None]
    n_act = segment_sums(active[None], fb)[0]
    n_all = np.maximum(fb[:, 1] - fb[:, 0], 1)
    denom = np.maximum(n_act, 1.0)
    mean = segment_sums(paired * w, fb) / denom
    sq = segment_sums(paired**2 * w, fb) / denom
    std = np.sqrt(np.maximum(sq - mean**2, 0.0))
    single_mean = segment_sums(single * w, fb) / denom
    e_mean = segment_sums((log_e * active)[None], fb)[0] / denom
    e_sq = segment_sums((log_e**2 * active)[None], fb)[0] / denom
    e_std = np.sqrt(np.maximum(e_sq - e_mean**2, 0.0))
    n_mel = N_MELS
    out = np.concatenate(
        [
            mean[:n_mel],
            std[:n_mel],
            np.stack([mean[n_mel:], std[n_mel:]], axis=1).reshape(-1, len(fb)),
            single_mean,
            e_std[None],
            (n_act / n_all)[None],
        ]
    ).T
    return np.nan_to_num(out.astype(np.float32))
