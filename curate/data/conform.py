"""One rule for the samples, channels and lengths of a track's files, for every reader of a track.

Readers (``curate scan``, ``pipelines train``, ``pipelines evaluate``, ``pipelines separate``,
``curate repair``, ``curate corrupt``, ``curate report``) apply the same rules, so that what the
scan accepts the others read the same way:

* **Samples** (:func:`sample_problem`): a file with NaN or infinite samples, or with a peak far
  above full scale (:data:`MAX_PEAK_DB`, a corrupt float file), is not audio anyone can use: the
  scan reports and skips it, ``separate`` skips it, ``evaluate`` leaves its track out, ``repair``
  copies its track unchanged, ``corrupt`` refuses it (:meth:`curate.data.datasets.Track.load_all`
  raises an error naming the file).

* **Sample rate** (:func:`rate_problem`): a file at less than :data:`MIN_SAMPLE_RATE` Hz (telephone
  quality) or more than :data:`MAX_SAMPLE_RATE` Hz is not music audio these models take (a header
  declaring 1 Hz would be resampled 44100-fold): the scan reports and skips it, ``separate`` skips
  it, the other readers raise an error naming the file.
* **Channels** (:func:`to_channels`): a mono file is used as dual mono; a file with more channels
  than needed keeps its first ones (the front left and right of a 5.1 WAV, demucs' rule); a stereo
  file read for one channel is averaged.
* **Lengths** (:func:`common_length`): stems of one track whose lengths differ by at most
  :data:`LENGTH_TOLERANCE_S` (exports with different tails, codec padding) are read up to the
  shortest; a larger difference is an error naming the track and the lengths (the files do not
  line up, and trimming would hide it).
"""

from __future__ import annotations

import numpy as np

from curate.common.errors import StemcurateError

LENGTH_TOLERANCE_S = 1.0
"""Largest length difference, in seconds, between the stems of one track that is read up to the shortest."""

MIN_SAMPLE_RATE = 8000
"""Lowest sample rate, Hz, of a file any command reads."""

MAX_SAMPLE_RATE = 768000
"""Highest sample rate, Hz, of a file any command reads."""

MAX_PEAK_DB = 40.0
"""A file whose peak is above this (dBFS; 100x full scale) holds impossible values (a corrupt float file)."""


def peak_dbfs(x: np.ndarray) -> float:
    """Peak level of ``x`` in dBFS (-inf for silence or no samples)."""
    peak = float(np.abs(x).max()) if x.size else 0.0
    return 20 * np.log10(peak) if peak > 0 else float("-inf")


def sample_problem(x: np.ndarray, *, max_peak_db: float = MAX_PEAK_DB) -> tuple[str, str] | None:
    """``(check, detail)`` when the samples of ``x`` cannot be used: ``non_finite`` (NaN/inf samples)
    or ``level`` (a peak above ``max_peak_db`` dBFS); None when they can."""
    bad = int(x.size - np.isfinite(x).sum())
    if bad:
        return "non_finite", f"{bad} NaN/inf samples"
    peak = peak_dbfs(x)
    if peak > max_peak_db:
        return "level", f"peak {peak:+.0f} dBFS, far above full scale (a corrupt float file?)"
    return None


def rate_problem(sample_rate: int) -> str | None:
    """Why a file at ``sample_rate`` Hz cannot be read (outside :data:`MIN_SAMPLE_RATE` ..
    :data:`MAX_SAMPLE_RATE`), or None when it can."""
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        return f"{sample_rate} Hz, outside the {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz that is read"
    return None


def audio_problem(x: np.ndarray, sample_rate: int, *, max_peak_db: float = MAX_PEAK_DB) -> tuple[str, str] | None:
    """``(check, detail)`` when a file's samples or rate cannot be used: ``sample_rate``
    (:func:`rate_problem`), then ``non_finite`` or ``level`` (:func:`sample_problem`); None when they can."""
    why = rate_problem(sample_rate)
    return ("sample_rate", why) if why else sample_problem(x, max_peak_db=max_peak_db)


def to_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """``x`` ``(c, samples)`` -> ``(channels, samples)``: mono repeated, extra channels dropped (the
    first ``channels`` kept), several channels averaged into one when ``channels`` is 1."""
    if x.ndim != 2:
        raise ValueError(f"audio must be (channels, samples), got shape {x.shape}")
    c = x.shape[0]
    if c == channels:
        return x
    if c == 1:
        return np.repeat(x, channels, axis=0)
    if channels == 1:
        return x.mean(axis=0, keepdims=True)
    return x[:channels]


def common_length(
    lengths: dict[str, int], sample_rate: int, *, where: str, tolerance_s: float = LENGTH_TOLERANCE_S
) -> int:
    """The length (samples) every file of a track is read to: the shortest of ``lengths`` (per file
    name). Raises :class:`StemcurateError` naming ``where`` when they differ by more than
    ``tolerance_s`` seconds at ``sample_rate`` Hz."""
    if not lengths:
        raise StemcurateError(f"{where}: no audio files")
    shortest, longest = min(lengths.values()), max(lengths.values())
    if longest - shortest > tolerance_s * sample_rate:
        detail = ", ".join(f"{n} {v}" for n, v in lengths.items())
        raise StemcurateError(
            f"{where}: files differ in length by {(longest - shortest) / sample_rate:.2f} s "
            f"(more than {tolerance_s:g} s; samples: {detail})"
        )
    return shortest
