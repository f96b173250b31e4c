"""Pre-flight checks of a track's files: find the one bad file before it costs a training run.

Each finding is a :class:`Problem`. ``skipped`` problems make the scan skip the stem (or the whole
track); ``warning`` problems are reported and the audio is still used.

Checks: ``missing`` (a requested stem has no file), ``decode`` (the file does not decode fully),
``truncated`` (a WAV header declares more samples than the file holds), ``empty`` (a file with no
samples), ``sample_rate`` (outside the range any reader takes, or unlike the track's other files),
``length`` (files of one track differ: up to a second apart they are read to the shortest, a
warning; further apart the odd ones are skipped), ``level`` (a peak far above full scale: a corrupt
float file), ``channels`` (mono or more than two), ``non_finite``
(NaN/inf samples), ``silent`` (peak below ``silence_db``), ``residual`` (mixture minus the sum
of the stems, in dB relative to the mixture, above ``max_residual_db``).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from curate.common.errors import StemcurateError, check_finite_fields
from curate.data import audio as audio_io
from curate.data.conform import MAX_PEAK_DB, audio_problem, common_length, peak_dbfs
from curate.data.datasets import MIXTURE, Track
from curate.data.layouts import WITHOUT_SIBLINGS

ERROR, WARNING = "skipped", "warning"


@dataclass(frozen=True)
class CheckConfig:
    """Thresholds of the pre-flight checks."""

    silence_db: float = -70.0
    """A stem whose peak is below this (dBFS) is silent."""
    max_residual_db: float = -20.0
    """Mixture residual above this (dB re mixture) is reported. MUSDB18's AAC reads about -32 dB."""
    max_peak_db: float = MAX_PEAK_DB
    """A file whose peak is above this (dBFS; 100x full scale) holds impossible values (a corrupt float file)."""

    def __post_init__(self):
        check_finite_fields(self, "check settings")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Problem:
    """One finding: which track/stem/file, which check, how bad, and a human-readable detail."""

    track: str
    subset: str
    stem: str | None
    path: str | None
    check: str
    severity: str
    detail: str


@dataclass
class CheckedTrack:
    """The audio of a track that passed the checks, and everything found on the way."""

    audio: dict[str, np.ndarray]
    """Usable sources (stems and, when readable, ``mixture``): float32 ``(channels, samples)``."""
    sample_rate: int
    problems: list[Problem]
    residual_db: float | None
    context: dict[str, np.ndarray] | None = None
    """The track's other stems (not requested) that passed every check, at the same rate and length:
    the possible sources of a leak into the requested ones."""


def residual_db(mixture: np.ndarray, stems: list[np.ndarray]) -> float:
    """Energy of ``mixture - sum(stems)`` relative to the mixture, in dB (-inf for an exact sum).

    Arrays are ``(channels, samples)``; a mono stem counts in every channel of the mixture.
    """
    total = np.zeros_like(mixture, dtype=np.float64)
    for s in stems:
        total += s
    err = np.sum((mixture.astype(np.float64) - total) ** 2)
    ref = np.sum(mixture.astype(np.float64) ** 2)
    if err == 0.0:
        return float("-inf")
    return float(10 * np.log10(err / max(ref, 1e-20)))


def _truncated(src, read: int) -> tuple[Path, int, int] | None:
    """``(file, declared, held)`` for the first WAV file of ``src`` whose header declares more samples than
    it holds (``read``: the samples read from a single file; the parts of a sum are measured from their
    headers), None when there is none."""
    if src.stream is not None:
        return None
    for f in src.files:
        if f.suffix.lower() == ".wav":
            declared = audio_io.wav_declared_frames(f)
            held = read if not src.parts else audio_io.info(f).frames
            if declared is not None and declared > held:
                return f, declared, held
    return None


def _in_part(track: Track, src, problem: tuple[str, str], config: CheckConfig) -> str:
    """The detail of ``problem`` (non-finite or too loud) found in the sum of ``src``'s parts, prefixed with
    the first part file that has it on its own (read again only here, when there is a problem)."""
    if not src.parts:
        return problem[1]
    for f in src.parts:
        try:
            x, sr = audio_io.read(f)
        except StemcurateError:
            continue
        own = audio_problem(x, sr, max_peak_db=config.max_peak_db)
        if own and own[0] == problem[0]:
            return f"{Path(os.path.relpath(f, track.root)).as_posix()}: {own[1]}"
    return problem[1]


def _mono_parts(track: Track, src, channels: int) -> list[str]:
    """The mono files among the parts of a stereo sum (each is added to both channels), relative to the
    data root."""
    if not src.parts or channels < 2:
        return []
    return [Path(os.path.relpath(f, track.root)).as_posix() for f in src.parts if audio_io.info(f).channels == 1]


def check_track(track: Track, stems: list[str], config: CheckConfig = CheckConfig()) -> CheckedTrack:
    """Decode every file of ``track`` and run all checks.

    ``stems`` are the stems the caller wants; all stems of the track are still read for the
    mixture residual. Returns the usable audio of the requested stems (and mixture).
    """
    problems: list[Problem] = []

    def report(stem, path, check, severity, detail):
        problems.append(Problem(track.name, track.subset, stem, path, check, severity, detail))

    for name in stems if track.layout not in WITHOUT_SIBLINGS else ():  # a file without siblings lacks no stem
        if name not in track.stems:
            report(name, None, "missing", ERROR, f"no {name} file in track (has {', '.join(track.stems) or 'none'})")
    for stem, check, detail in track.notes:
        report(stem, None, check, WARNING, detail)
    for path in track.ignored:  # bass.flac beside bass.wav: one file per stem is read, and the scan says which
        name = path.stem
        kept = track.source(name).path.name
        report(
            name,
            Path(os.path.relpath(path, track.root)).as_posix(),
            "duplicate",
            WARNING,
            f"second file of stem '{name}'; {kept} is read, this one is not",
        )

    names = list(track.stems) + ([MIXTURE] if track.mixture is not None else [])
    loaded: dict[str, np.ndarray] = {}
    rates: dict[str, int] = {}
    rel = {n: track.source(n).relative_to(track.root) for n in names}
    absent = set()
    if track.listed_in is not None:  # MoisesDB, MedleyDB, a CSV list: files the metadata names
        for name in names:
            gone = [f for f in track.source(name).files if not f.exists() and not f.is_symlink()]
            if gone:
                absent.add(name)
                more = f" (and {len(gone) - 1} more of its files)" if len(gone) > 1 else ""
                where = Path(os.path.relpath(gone[0], track.root)).as_posix()
                report(
                    name, rel[name], "missing", ERROR, f"{where}: listed in {track.listed_in.name} but not found{more}"
                )
    for name in names:
        src = track.source(name)
        if name in absent:
            continue
        cut = _truncated(src, 0) if src.parts else None  # a short part would read as a length mismatch
        if cut is None:
            try:
                x, sr = track.load(name)
            except StemcurateError as exc:
                report(name, rel[name], "decode", ERROR, str(exc).split(": ", 1)[-1])
                continue
            cut = None if src.parts else _truncated(src, x.shape[1])
        if cut is not None:
            file, declared, held = cut
            where = "" if file == src.path else f"{Path(os.path.relpath(file, track.root)).as_posix()}: "
            report(name, rel[name], "truncated", ERROR, f"{where}header declares {declared} samples, file holds {held}")
            continue
        if x.shape[1] == 0:
            report(name, rel[name], "empty", ERROR, "no samples")
            continue
        unusable = audio_problem(x, sr, max_peak_db=config.max_peak_db)
        if unusable:
            report(name, rel[name], unusable[0], ERROR, _in_part(track, src, unusable, config))
            continue
        for part in _mono_parts(track, src, x.shape[0]):
            report(name, rel[name], "channels", WARNING, f"{part}: mono part, added to both channels of the sum")
        if x.shape[0] == 1:
            report(name, rel[name], "channels", WARNING, "mono file, used as one channel")
        elif x.shape[0] > 2:
            report(name, rel[name], "channels", WARNING, f"{x.shape[0]} channels, the first two are used")
        loaded[name], rates[name] = x, sr

    # rate, then length: compare with the mixture, else with the most common value. Lengths up to
    # LENGTH_TOLERANCE_S apart are read to the shortest (curate.data.conform, the rule of every reader)
    for key, unit in (("sample_rate", "Hz"), ("length", "samples")):
        values = dict(rates) if key == "sample_rate" else {n: a.shape[1] for n, a in loaded.items()}
        if len(set(values.values())) <= 1:
            continue
        ref = values.get(MIXTURE, Counter(values.values()).most_common(1)[0][0])
        shortest = None
        if key == "length":
            try:
                shortest = common_length(values, next(iter(rates.values())), where=f"track '{track.name}'")
            except StemcurateError:
                pass
        for name, v in list(values.items()):
            if v != ref and shortest is not None:
                report(
                    name,
                    rel[name],
                    key,
                    WARNING,
                    f"{v} {unit}, the track's other files have {ref} {unit}; all read to {shortest} {unit}",
                )
            elif v != ref:
                report(name, rel[name], key, ERROR, f"{v} {unit}, the track's other files have {ref} {unit}")
                loaded.pop(name, None)
                rates.pop(name, None)
        if shortest is not None:
            loaded = {name: a[:, :shortest] for name, a in loaded.items()}

    for name, x in loaded.items():
        peak_db = peak_dbfs(x)
        if peak_db < config.silence_db:
            what = "all zeros" if peak_db == float("-inf") else f"peak {peak_db:.1f} dBFS"
            report(name, rel[name], "silent", WARNING if name == MIXTURE else ERROR, f"silent ({what})")

    res = None
    unread = [n for n in track.stems if n not in loaded]
    if unread and MIXTURE in loaded:  # the residual needs every stem: say that it was not measured, and why
        files = ", ".join(rel[n] if n in rel else n for n in unread)
        report(None, rel[MIXTURE], "residual", WARNING, f"not measured: {files} could not be used (see above)")
    all_ok = not unread and MIXTURE in loaded
    if all_ok:
        mix = loaded[MIXTURE]
        stem_arrays = [loaded[n] for n in track.stems]
        if all(a.shape[1] == mix.shape[1] and a.shape[0] in (1, mix.shape[0]) for a in stem_arrays):
            res = residual_db(mix, stem_arrays)
            if res > config.max_residual_db:
                report(
                    None,
                    rel[MIXTURE],
                    "residual",
                    WARNING,
                    f"mixture differs from the sum of the stems by {res:.1f} dB (a stem is missing, scaled or "
                    f"misaligned)",
                )

    skipped = {p.stem for p in problems if p.severity == ERROR}
    usable = {n: x for n, x in loaded.items() if n not in skipped and (n in stems or n == MIXTURE)}
    context = {n: x for n, x in loaded.items() if n not in skipped and n not in stems and n != MIXTURE}
    sr = next(iter(rates.values())) if rates else 0
    return CheckedTrack(usable, sr, problems, res, context)
