"""Band configurations of the Band-Split RNN as data.

A band spec is a list of ``[end_hz, step_hz]`` pairs: from the previous end (0 Hz first) up to
``end_hz`` the spectrum is cut into bands ``step_hz`` wide; what remains up to Nyquist is one last
band. A band holds the STFT bins whose centre frequency is below its upper edge and not below its
lower one (the convention of the public BSRNN code).
"""

from __future__ import annotations

import numpy as np

BUILTIN_SPECS: dict[str, list[list[float]]] = {
    "vocals": [[1000, 100], [4000, 250], [8000, 500], [16000, 1000], [20000, 2000]],
    "bass": [[500, 50], [1000, 100], [4000, 500], [8000, 1000], [16000, 2000]],
    "drums": [[1000, 50], [2000, 100], [4000, 250], [8000, 500], [16000, 1000]],
}
BUILTIN_SPECS["other"] = BUILTIN_SPECS["vocals"]


class BandSpecError(ValueError):
    """An invalid band spec (the message says which pair and why)."""


def validate_spec(spec, sample_rate: int) -> list[tuple[float, float]]:
    """Check a spec and return it as ``[(end_hz, step_hz), ...]``; :class:`BandSpecError` if invalid."""
    nyquist = sample_rate / 2
    try:
        pairs = [(float(e), float(s)) for e, s in spec]
    except (TypeError, ValueError):
        raise BandSpecError(f"band spec must be a list of [end_hz, step_hz] pairs, got {spec!r}") from None
    if not pairs:
        raise BandSpecError("band spec is empty")
    start = 0.0
    for n, (end, step) in enumerate(pairs):
        if end <= start:
            raise BandSpecError(
                f"band spec pair {n} [{end:g}, {step:g}]: edges must increase (previous end {start:g} Hz)"
            )
        if step <= 0 or step > end - start:
            raise BandSpecError(
                f"band spec pair {n} [{end:g}, {step:g}]: step must be > 0 and at most the span {end - start:g} Hz"
            )
        if end > nyquist:
            raise BandSpecError(
                f"band spec pair {n} [{end:g}, {step:g}]: beyond Nyquist ({nyquist:g} Hz at {sample_rate} Hz)"
            )
        start = end
    return pairs


def band_edges(spec, sample_rate: int = 44100, n_fft: int = 2048) -> list[tuple[int, int]]:
    """``[(first_bin, end_bin), ...]`` per band (end exclusive), covering all ``n_fft // 2 + 1`` bins."""
    pairs = validate_spec(spec, sample_rate)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    edges_hz = []
    start = 0.0
    for end, step in pairs:
        edges_hz.extend(np.arange(start + step, end + step / 2, step))
        start = end
    bins, first = [], 0
    for edge in edges_hz:
        last = int(np.searchsorted(freqs, edge, side="left"))  # bins with f < edge
        if last > first:
            bins.append((first, last))
            first = last
    bins.append((first, len(freqs)))
    return bins
