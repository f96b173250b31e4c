"""Bleed: how much of a track's other stems leaks into each fragment of a stem, in dB.

A leak is a filtered, delayed copy of another stem of the same track; :mod:`curate.scoring.leak` measures it
for one receiving stem, one source and one fragment (delay search, evidence grade, Wiener filter). This
module reads every fragment of every stem of a track against every sibling: the blocks the filter is
cross-validated on, the direction of a leak seen from both ends, and ``bleed_db``.

A short filter can model a leak path (delay, coloration) but not two different instruments that
merely play the same notes, which per-bin coherence would mistake for a leak. And a leak path is one
filter through the fragment: the frames are cut into blocks of at most ``block_s`` (1.5 s), the filter
is fitted on the even blocks and scored on the odd ones and vice versa, and only the energy it
predicts on frames it was not fitted on counts. Parts that play along (a bass locked to the kick, a
keyboard doubling the bass line) fit a filter by chance on some frames that predicts little on the
others. A note held across a block boundary still fits (its two pieces are one waveform).

A leak seen from both ends (``j`` reads as leaking into ``i`` and ``i`` into ``j`` through one path,
at mirrored delays or at zero delay, where the delay gives no direction) counts once, in the stem that
receives it by two asymmetries added as log ratios: the shared content is the smaller share of the
receiver (a leak is a part of its receiver, its source holds it whole), and the receiver is never much
quieter, per band and frame, than the leak it holds (:func:`floor_violation`; the leak is the source
through the leak model's own filter, since a per-band gain read from the cross-spectrum also counts the
chance coherence of parts on the same notes).

A stem holds its leak whole, so it cannot fall silent where the leak's source goes on: a reading is
dropped when more than ``max_floor_violation`` of the predicted leak's energy (the source through the
fitted filter, per band and frame) lies where the receiver is ``floor_db`` (15 dB) quieter than it
(:func:`floor_violation`). The leak's level in each band is first set to the median ratio of receiver
to leak over the band's frames, so that a short filter that misses a steep edge of a leak's response
(by the same amount in every frame) does not count; frames where the receiver is silent in every band
(a gate or an edit) do not count either. Parts rendered from one score (a bass on the lead line) are
coherent while both play, and the double rests where the other part goes on.

Then one direction per pair of stems of the track: where some fragment of ``i`` reads ``j`` and some
fragment of ``j`` reads ``i``, the pair is read once over the whole track both ways; a path delayed one
way only (a copy comes later than its original) or else the two asymmetries above decide which stem
receives, and the source's zero-delay readings of its receiver are dropped in all its fragments.
Readings at a clear positive delay stay (two microphones in one room leak both ways, each path delayed).
What each of these rules gains on the detection benchmarks: ``docs/benchmarks.md``.

``bleed_db`` is ``10 log10(sum_j fraction_j)`` (-80 dB floor) and ``bleed_stem`` the ``j`` with the
largest fraction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from curate.scoring.leak import cell_sums, hann_lag_window, leak_fraction, path_response
from curate.scoring.spectra import StemSpectrum, frame_bounds

FLOOR_DB = -80.0


@dataclass(frozen=True)
class BleedConfig:
    """Search range and filter length of the leak model."""

    max_delay_ms: float = 21.0
    """Longest leak delay searched (and the most negative delay checked for the reverse direction)."""
    min_delay_ms: float = 0.25
    """Peaks within +-this are 'zero delay': a leak of unknown direction (see ``resolve_direction``)."""
    taps: int = 96
    """Wiener filter length in samples, starting ``pre`` samples before the detected delay."""
    pre: int = 8
    peak_none: float = 8.5
    peak_full: float = 11.5
    """Whitened cross-correlation peak over its median: no leak evidence below, full above."""
    lin_none: float = 0.80
    lin_full: float = 0.88
    """Phase linearity of the coherent bins (0-1): no leak evidence below, full above."""
    reverse_ratio: float = 0.1
    """A positive-delay peak below half the strongest (reverse) one still counts as a leak (both ways)
    when it is significant on its own (``peak_full``) and at least this fraction of the strongest."""
    msc_bias: float = 0.008
    """Coherence that independent stems show over a few hundred frames, subtracted per bin."""
    block_s: float = 1.5
    """Cross-validation blocks: a fragment's frames are cut into blocks of at most this length, and the
    filter fitted on the even blocks is scored on the odd ones and vice versa."""
    cross_validate: bool = True
    """Count only the leak that a filter fitted on one half of the fragment predicts in the other half."""
    late_frames: bool = True
    """Measure delays beyond half a hop on frames one hop apart (see :func:`leak_fraction`)."""
    explain_away: bool = True
    """A positive-delay reading beside a stronger reverse path counts only for what it predicts once the
    reverse path is taken out (see :func:`leak_fraction`)."""
    resolve_direction: bool = True
    """When ``j`` reads as leaking into ``i`` and ``i`` into ``j`` through one path (mirrored delays: a
    zero-delay path has no direction), only one reading counts, as a leak into the stem that (1) holds the
    shared content as the smaller share (a leak is a part of its receiver, its source holds it whole) and
    (2) is never much quieter than the leak would make it (see :func:`floor_violation`); the two log
    ratios are added. Then one direction per pair over the whole track (see the module docstring)."""
    separated_delay_ms: float = 1.0
    """A reading from a stem that is a separator's output counts only at a longer delay than this: a mask
    estimate holds masked pieces of its siblings in their own frames, read as its leaking into them
    near zero delay (its frequency smoothing blurs the peak by a fraction of a millisecond), while a
    clear delay is a leak path of its own (the recording it was cut from leaked into a sibling too)."""
    floor_db: float = -15.0
    """A receiver more than this many dB under its supposed leak, in a band and frame, contradicts the
    leak (see ``max_floor_violation``)."""
    max_floor_violation: float = 0.05
    """A reading whose leak (the source through the fitted path) would sit ``floor_db`` above the receiver
    for more than this share of the leak's energy is not a leak: a stem holds its leak whole, so it
    cannot fall silent where the source goes on. Parts that play the same notes (a bass doubling the
    lead line, rendered from one score) are coherent while both play, and the double stops where the
    other part goes on. Frames where the receiver is silent in every band (a gate or an edit) do not
    count. 1 turns the check off."""

    def __post_init__(self):
        checks = [
            (
                self.taps >= 1 and 0 <= self.pre < self.taps,
                f"taps must be 1 or more and pre within 0-taps, got {self.taps}, {self.pre}",
            ),
            (
                0 <= self.min_delay_ms < self.max_delay_ms,
                f"need 0 <= min_delay_ms < max_delay_ms, got {self.min_delay_ms}, {self.max_delay_ms}",
            ),
            (
                self.peak_none < self.peak_full,
                f"peak_none must be below peak_full, got {self.peak_none}, {self.peak_full}",
            ),
            (self.lin_none < self.lin_full, f"lin_none must be below lin_full, got {self.lin_none}, {self.lin_full}"),
            (self.block_s > 0, f"block_s must be positive, got {self.block_s}"),
            (
                self.separated_delay_ms >= 0,
                f"separated_delay_ms must be 0 or more, got {self.separated_delay_ms}",
            ),
            (
                0 < self.max_floor_violation <= 1 and self.floor_db < 0,
                f"need 0 < max_floor_violation <= 1 and floor_db < 0, got {self.max_floor_violation}, {self.floor_db}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"BleedConfig: {message}")


def _band_edges(n_bins: int, n_bands: int = 16) -> np.ndarray:
    """Bin edges of ``n_bands`` log-spaced bands over ``n_bins`` STFT bins (the first from bin 0)."""
    edges = np.unique(np.round(np.geomspace(2, n_bins, n_bands + 1)).astype(np.int64))
    edges[0] = 0
    return edges


def _band_energy(power: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Energy per band and frame ``(bands, frames)`` from the power per bin and frame ``(F, frames)``."""
    return np.add.reduceat(power, edges[:-1], axis=0)


def floor_violation(
    recv: np.ndarray,
    src_power: np.ndarray,
    response: np.ndarray | None,
    edges: np.ndarray,
    *,
    below: float = 0.25,
    skip_silent: bool = False,
    band_level: bool = False,
) -> float:
    """How often a stem is quieter than the leak it would hold: ``0-1``.

    If ``src`` leaks into ``recv`` through the path ``response`` ``(F,)`` (the leak model's filter, from
    :func:`path_response`), the leak, ``|response|^2`` times ``src``'s power per bin and frame
    ``src_power`` ``(F, frames)`` summed per band, is a floor under ``recv``'s energy per band and frame
    ``recv`` ``(bands, frames)`` (:func:`_band_energy`): a receiver is never much quieter than its leak.
    Returns the share of the leak's energy in band-frames where ``recv`` holds less than ``below`` times
    it (a power ratio; 0 without a response). ``skip_silent``: frames where ``recv`` is silent in every
    band (90 dB under its loudest frame: a gate or an edit took the leak out with the stem's own
    content) do not count. ``band_level``: the leak's level in each band is first lowered to the median
    ratio of ``recv`` to it over the frames where the band holds the leak (a short filter misses a steep
    edge of a leak's response by the same amount in every frame; a receiver that rests where the
    source goes on falls under its leak in some frames only). The filter, not a per-band gain, is the
    leak: a per-band gain read from the cross-spectrum also counts the chance coherence of two parts in a
    band where the receiver is loud (a bass and a keyboard on the same notes), and the source then looks
    like a leak where the bass pauses.
    """
    if response is None:
        return 0.0
    leak = _band_energy((np.abs(response) ** 2)[:, None] * src_power, edges)
    if skip_silent and recv.size:
        frame_energy = recv.sum(axis=0)
        live = frame_energy > 1e-9 * frame_energy.max()
        leak, recv = leak[:, live], recv[:, live]
    if band_level and leak.size:
        holds = leak >= 0.01 * leak.max(axis=1, keepdims=True)
        ratio = np.where(holds, recv / np.maximum(leak, 1e-30), np.nan)
        with np.errstate(all="ignore"):
            level = np.nan_to_num(np.nanmedian(ratio, axis=1), nan=1.0)
        leak = leak * np.minimum(level, 1.0)[:, None]
    total = leak.sum()
    return float(np.sum(leak * (recv < below * leak)) / total) if total > 0 else 0.0


def one_path(tau: int, tau_back: int, config: BleedConfig) -> bool:
    """Whether the delays (samples) of ``j`` in ``i`` and of ``i`` in ``j`` are one path seen from both ends."""
    return abs(tau + tau_back) <= config.pre


def _blocks(edges: np.ndarray, block: int) -> np.ndarray:
    """``edges`` with extra edges so that no cell is longer than ``block`` frames (cells split evenly)."""
    out = [edges[:1]]
    for a, b in zip(edges[:-1], edges[1:]):
        n = max(1, int(np.ceil((b - a) / block)))
        out.append(np.round(np.linspace(a, b, n + 1)[1:]).astype(np.int64))
    return np.unique(np.concatenate(out))


def track_bleed(
    spectra: dict[str, StemSpectrum],
    bounds: dict[str, np.ndarray],
    config: BleedConfig = BleedConfig(),
    *,
    with_delays: bool = False,
) -> dict[str, tuple]:
    """Bleed of every fragment of every stem of one track.

    ``spectra``: STFT per stem (same rate, size and length); ``bounds``: ``(n, 2)`` sample bounds per stem.
    Returns per stem ``(bleed_db (n,), bleed_stem list, fractions (n, other stems))`` and, with
    ``with_delays``, a fourth item: the delay of each reading ``(n, other stems)`` in ms (0 where the
    fraction is 0; at most ``config.min_delay_ms`` is zero delay); ``bleed_db`` is at most 0 dB. A single
    stem has no leak (-80 dB). Raises ``ValueError`` for stems of different STFT size, rate or length,
    non-finite values, or missing or mis-shaped bounds.
    """
    names = list(spectra)
    missing = [s for s in names if s not in bounds]
    if missing:
        raise ValueError(f"track_bleed: no bounds for {', '.join(missing)}")
    if len(names) < 2:  # no sibling, no leak
        none = {
            s: (np.full(len(bounds[s]), FLOOR_DB, np.float32), [None] * len(bounds[s]), np.zeros((len(bounds[s]), 0)))
            for s in names
        }
        return {s: (*v, np.zeros_like(v[2])) for s, v in none.items()} if with_delays else none
    first = spectra[names[0]]
    n_fft, hop, sr = first.n_fft, first.hop, first.sample_rate
    for s in names:
        sp = spectra[s]
        if (sp.n_fft, sp.hop, sp.sample_rate, sp.frames) != (n_fft, hop, sr, first.frames):
            raise ValueError(f"track_bleed: stem {s} has another STFT size, rate or length than {names[0]}")
        if not np.isfinite(sp.spec).all():
            raise ValueError(f"track_bleed: stem {s} has non-finite values (NaN or inf)")
        if np.ndim(bounds[s]) != 2 or np.shape(bounds[s])[1] != 2:
            raise ValueError(
                f"track_bleed: bounds of {s} must be (n, 2) sample bounds, got shape {np.shape(bounds[s])}"
            )
    fbs = {s: frame_bounds(bounds[s], hop, spectra[s].frames) for s in names}
    edges = np.unique(np.concatenate([fb.ravel() for fb in fbs.values()] + [np.zeros(1, np.int64)]))
    edges = _blocks(edges, max(1, int(round(config.block_s * sr / hop))))
    specs = [spectra[s].spec for s in names]
    if any(sp.shape[0] != specs[0].shape[0] for sp in specs):  # mono and stereo: compare on the mono sum
        specs = [sp.mean(axis=0, keepdims=True) for sp in specs]
    power, cross, late = cell_sums(specs, edges, with_late=config.late_frames)
    odd = (np.arange(power.shape[-1]) % 2).astype(bool)  # cells alternate between the two halves

    def csum(x, sel=None):
        if sel is not None:
            x = np.where(sel, x, 0)
        return np.concatenate([np.zeros(x.shape[:-1] + (1,), x.dtype), np.cumsum(x, -1)], -1)

    sums = [(csum(power), csum(cross), csum(late))]
    if config.cross_validate:
        sums += [(csum(power, sel), csum(cross, sel), csum(late, sel)) for sel in (~odd, odd)]
    del power, cross, late
    lw = hann_lag_window(n_fft)
    band_edges = _band_edges(specs[0].shape[1])
    floor_check = config.max_floor_violation < 1
    powers = (
        [np.einsum("cft,cft->ft", sp, np.conj(sp)).real.astype(np.float32) for sp in specs]
        if config.resolve_direction or floor_check
        else []
    )
    bands = [_band_energy(p, band_edges) for p in powers]
    zero = max(1, int(config.min_delay_ms * sr / 1000))  # delays up to this give no direction

    def sums_of(i, j, a, b):
        """(cross X_i X_j*, power of j, power of i, late) over cells a..b, all of them or one half."""
        return [
            (
                cx[i, j, :, b] - cx[i, j, :, a],
                cp[j, :, b] - cp[j, :, a],
                cp[i, :, b] - cp[i, :, a],
                (lt[i, j, :, b] - lt[i, j, :, a], lt[j, i, :, b] - lt[j, i, :, a]),
            )
            for cp, cx, lt in sums
        ]

    def read(part, b_minus_a):
        halves = tuple(part[1:]) if len(part) == 3 and b_minus_a >= 2 else None
        late = part[0][3] if config.late_frames else None
        return leak_fraction(*part[0][:3], n_fft, sr, config, lw, halves=halves, late=late, hop=hop)

    def violations(i, j, part, back, tau, tau_back, fa, fz):
        """Floor violations of i receiving j's leak and of j receiving i's, over frames fa..fz."""
        late = config.late_frames
        paths = [
            path_response(d, *p[0][:3], p[0][3] if late else None, n_fft, hop, lw, config)
            for d, p in ((tau, part), (tau_back, back))
        ]
        fwd = floor_violation(bands[i][:, fa:fz], powers[j][:, fa:fz], paths[0], band_edges)
        rev = floor_violation(bands[j][:, fa:fz], powers[i][:, fa:fz], paths[1], band_edges)
        return fwd, rev

    def holds_leak(i, j, part, tau, fa, fz) -> bool:
        """Whether i holds the leak of j through the path at ``tau`` over frames fa..fz (``floor_db``)."""
        late = part[0][3] if config.late_frames else None
        path = path_response(tau, *part[0][:3], late, n_fft, hop, lw, config)
        below = 10 ** (config.floor_db / 10)
        fv = floor_violation(
            bands[i][:, fa:fz], powers[j][:, fa:fz], path, band_edges, below=below, skip_silent=True, band_level=True
        )
        return fv <= config.max_floor_violation

    def receives(i, j, f, tau, f_back, tau_back, fwd, rev) -> bool:
        """Whether i, not j, receives the content the two share (see ``resolve_direction``)."""
        if tau > zero and tau_back <= zero:  # only the path into i is delayed: the copy comes later
            return True
        if tau_back > zero and tau <= zero:
            return False
        return np.log(f_back / f) + np.log((rev + 1e-3) / (fwd + 1e-3)) >= 0

    out, delays = {}, {}
    for i, s in enumerate(names):
        fb = fbs[s]
        pos = np.searchsorted(edges, fb)
        others = [j for j in range(len(names)) if j != i]
        frac = np.zeros((len(fb), len(others)))
        delays[s] = np.zeros((len(fb), len(others)), np.int64)
        for q, (a, b) in enumerate(pos):
            for k, j in enumerate(others):
                part = sums_of(i, j, a, b)
                frac[q, k], tau = read(part, b - a)
                delays[s][q, k] = tau
                if frac[q, k] > 0 and floor_check and not holds_leak(i, j, part, tau, *fb[q]):
                    frac[q, k] = 0.0  # the receiver falls silent where the source goes on: not a leak
                if frac[q, k] > 0 and config.resolve_direction:
                    # the same frames the other way round: i leaking into j
                    back = _reversed(part)
                    f_back, tau_back = read(back, b - a)
                    if f_back > 0 and one_path(tau, tau_back, config):
                        fwd, rev = violations(i, j, part, back, tau, tau_back, *fb[q])
                        if not receives(i, j, frac[q, k], tau, f_back, tau_back, fwd, rev):
                            frac[q, k] = 0.0  # i is its source, not its receiver
        out[s] = frac
    if config.resolve_direction:
        _one_direction_per_pair(
            names, out, delays, sums_of, read, violations, receives, len(edges) - 1, first.frames, zero
        )
    result = {}
    for s in names:
        frac = out[s]
        result[s] = (*bleed_of_fractions(frac, [n for n in names if n != s]), frac)
        if with_delays:
            result[s] += (np.where(frac > 0, delays[s] * 1000.0 / sr, 0.0),)
    return result


def bleed_of_fractions(frac: np.ndarray, others: list[str]) -> tuple[np.ndarray, list[str | None]]:
    """``bleed_db`` ``(n,)`` float32 and ``bleed_stem`` of fragments from their leak fractions ``(n, others)``:
    ``10 log10`` of the summed fractions (at most 1: several sources cannot hold more than all of the
    stem; -80 dB floor) and the source with the largest fraction (None where none leaks)."""
    total = np.minimum(frac.sum(axis=1), 1.0)
    db = np.maximum(10 * np.log10(np.maximum(total, 1e-30)), FLOOR_DB).astype(np.float32)
    return db, [others[int(r.argmax())] if r.max() > 0 else None for r in frac]


def _reversed(part: list[tuple]) -> list[tuple]:
    """The sums of :func:`track_bleed`'s ``sums_of(i, j, ...)`` as those of ``(j, i)``: i leaking into j."""
    return [(np.conj(g), p_i, p_j, lt[::-1]) for g, p_j, p_i, lt in part]


def _one_direction_per_pair(
    names, fracs, delays, sums_of, read, violations, receives, cells: int, frames: int, zero: int
) -> None:
    """Make one leak direction per pair of stems of a track (in place on ``fracs``, per stem ``(n, others)``).

    Where some fragment of ``i`` reads ``j`` as leaking into it and some fragment of ``j`` reads ``i``, the
    pair is read over the whole track both ways and the direction decided once (``receives``: a path
    delayed one way only; else the smaller share and the floor violations); the source's readings of its
    receiver at zero delay (``delays`` per stem ``(n, others)`` in samples; ``zero``: the largest delay
    that gives no direction) are dropped in every fragment. Content shared at zero delay, or delayed one
    way only, is one recording leaking into another, not two leaks; a reading at a clear positive delay is
    a path of its own (two microphones in one room) and stays, and so do paths delayed both ways over the
    whole track."""

    def col(i, j):
        return j if j < i else j - 1

    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            fi, fj = fracs[names[i]], fracs[names[j]]
            if not (fi.size and fj.size and fi[:, col(i, j)].max() > 0 and fj[:, col(j, i)].max() > 0):
                continue
            part = sums_of(i, j, 0, cells)
            back = _reversed(part)
            f, tau = read(part, cells)
            f_back, tau_back = read(back, cells)
            if f > 0 and f_back > 0 and tau > zero and tau_back > zero:
                continue  # delayed both ways: two paths (two microphones in one room), both leaks
            if f > 0 and f_back > 0:
                fwd, rev = violations(i, j, part, back, tau, tau_back, 0, frames)
                i_receives = receives(i, j, f, tau, f_back, tau_back, fwd, rev)
            elif f > 0 or f_back > 0:
                i_receives = f > 0
            else:  # neither reads over the whole track: the smaller mean share is the receiver's
                i_receives = fi[:, col(i, j)].mean() <= fj[:, col(j, i)].mean()
            src, recv = (j, i) if i_receives else (i, j)
            undirected = delays[names[src]][:, col(src, recv)] <= zero
            fracs[names[src]][undirected, col(src, recv)] = 0.0
