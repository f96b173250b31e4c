"""``curate corrupt``: write a label-noise copy of a dataset, with its ground truth.

Kinds of corruption (per stem of the corrupted subset):

* ``swap``: two stems of a track exchange their audio (both labels are wrong);
* ``replace``: the stem is replaced by another track's stem of another class, level-matched;
* ``partial``: a time range (3-8 s) of the stem is replaced by another track's stem of another class
  (on a one-track dataset the donor is the track itself);
* ``separated``: the stem is replaced by a mask-based separator's estimate of it from the track's mixture
  (as training sets built from separator outputs are; :mod:`curate.simulate.masking`): the ratio mask
  ``|S|^p / (|S|^p + |R|^p)`` of the stem and the rest (``p`` 0.5-2), smoothed over 1-15 bins and 1-9
  frames, with a floor of 0-0.1: the stem plus masked remains of every sibling.

Kinds of leak (the other stem files of the same track as they are after the mislabels leak in; each
row's ``leak_db`` is one sibling's level relative to the receiving stem's RMS; a ``room`` leak's level
in all is the power sum of its rows):

* ``bleed``: a microphone hearing another source: 1-2 siblings, each -20...-6 dB, delayed 0.5-10 ms
  and filtered (low-, high-, band-pass or none);
* ``room``: a microphone in a room with the whole band: every sibling at once, each with its own
  distance (delay 1-20 ms), one air/off-axis low-pass (1.5-8 kHz) and a reverb tail (exponentially
  decaying noise, RT60 0.2-0.8 s, direct-to-reverberant ratio 0-10 dB); -18...-6 dB in all;
* ``console``: electrical crosstalk on a desk or an interface: 1-2 siblings at zero delay, flat or
  rising with frequency (high-pass 1-5 kHz), each -24...-10 dB. Zero delay gives no direction.

A stem gets one of the first four kinds (equally likely among those in ``kinds``) with probability
``mislabel_rate`` (a swap corrupts its partner too, so the share of corrupted stems is higher than the
rate) and, independently, a leak of one of the leak kinds in ``kinds`` (equally likely) with probability
``bleed_rate``. Stems of RMS below 1e-4 are neither
corrupted nor used as a source. Non-finite samples are an error. ``mixture`` is the sum of the
corrupted stems (a mono stem in every channel). Written as float32 WAV, into a hidden
``.DST.partial`` folder beside ``DST`` that is renamed to ``DST`` once complete
(:func:`curate.common.atomic.atomic_dir`).
``DST/corruptions.parquet`` has one row per corruption (see :data:`curate.data.schema.CORRUPTIONS_SCHEMA`);
stems without a row are clean. Other subsets are copied unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import signal

from curate.common.atomic import atomic_dir
from curate.common.errors import StemcurateError
from curate.common.outputs import output_path
from curate.data import audio as audio_io
from curate.data.datasets import MIXTURE, Track, copy_subsets, discover
from curate.data.layouts import WITHOUT_SIBLINGS, detect_layout
from curate.data.schema import CORRUPTIONS_FILE, CORRUPTIONS_SCHEMA, write_corruptions
from curate.simulate.masking import separated_stem

MISLABEL_KINDS = ("swap", "replace", "partial")
SEPARATED = "separated"
STEM_KINDS = (*MISLABEL_KINDS, SEPARATED)
"""The kinds that replace (part of) a stem's file, drawn with probability ``mislabel_rate``."""
LEAK_KINDS = ("bleed", "room", "console")
KINDS = (*STEM_KINDS, *LEAK_KINDS)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def _fit(x: np.ndarray, n: int, channels: int, offset: int = 0) -> np.ndarray:
    """``x`` (c, m) looped/cropped to ``n`` samples starting at ``offset``, with ``channels`` channels."""
    if x.shape[0] != channels:
        x = np.repeat(x.mean(0, keepdims=True), channels, axis=0)
    reps = int(np.ceil((n + offset) / max(1, x.shape[1]))) + 1
    return np.tile(x, (1, reps))[:, offset : offset + n]


def _active_excerpt(rng: np.random.Generator, x: np.ndarray, length: int, channels: int) -> np.ndarray:
    """An excerpt of ``x`` of ``length`` samples whose RMS is within 10 dB of ``x``'s (the most active of 8 tries)."""
    ref = _rms(x)
    best, best_rms = None, -1.0
    for _ in range(8):
        cand = _fit(x, length, channels, int(rng.integers(0, max(1, x.shape[1]))))
        r = _rms(cand)
        if r > best_rms:
            best, best_rms = cand, r
        if r >= ref * 10 ** (-10 / 20):
            break
    return best


def leak_filter(rng: np.random.Generator, sr: int) -> tuple[str, np.ndarray | None]:
    """A random leak coloration: name and SOS coefficients (None: unfiltered)."""
    kind = rng.choice(["lowpass", "highpass", "bandpass", "none"])
    if kind == "lowpass":
        fc = rng.uniform(500, 4000)
        return f"lowpass {int(fc)} Hz", signal.butter(2, fc, "low", fs=sr, output="sos")
    if kind == "highpass":
        fc = rng.uniform(200, 2000)
        return f"highpass {int(fc)} Hz", signal.butter(2, fc, "high", fs=sr, output="sos")
    if kind == "bandpass":
        lo = rng.uniform(200, 1500)
        return f"bandpass {int(lo)}-{int(lo * 4)} Hz", signal.butter(2, [lo, lo * 4], "band", fs=sr, output="sos")
    return "none", None


def room_response(rng: np.random.Generator, sr: int, channels: int, rt60_s: float, drr_db: float) -> np.ndarray:
    """Impulse response ``(channels, samples)`` of a room: a unit direct path, then exponentially decaying
    noise (independent per channel) reaching -60 dB after ``rt60_s`` seconds, whose energy is ``drr_db``
    below the direct path's."""
    n = max(2, int(rt60_s * sr))
    t = np.arange(1, n) / sr
    tail = rng.standard_normal((channels, n - 1)) * 10 ** (-3 * t / rt60_s)
    tail *= 10 ** (-drr_db / 20) / np.sqrt(np.sum(tail**2, axis=1, keepdims=True))
    return np.concatenate([np.ones((channels, 1)), tail], axis=1)


def make_leak(
    source: np.ndarray,
    target_rms: float,
    leak_db: float,
    delay: int,
    sos: np.ndarray | None,
    ir: np.ndarray | None = None,
) -> np.ndarray:
    """``source`` (c, n) convolved with ``ir`` (c, m) (a room, None: none), filtered, delayed by ``delay``
    samples and scaled to ``leak_db`` re ``target_rms``."""
    x = source.astype(np.float64)
    if ir is not None:
        x = signal.fftconvolve(x, ir, axes=1)[:, : x.shape[1]]
    x = signal.sosfilt(sos, x, axis=1) if sos is not None else x
    delay = min(delay, x.shape[1])
    x = np.concatenate([np.zeros((x.shape[0], delay)), x[:, : x.shape[1] - delay]], axis=1)
    r = _rms(x)
    return x * (target_rms * 10 ** (leak_db / 20) / r) if r > 0 else x


def corrupt_dataset(
    src: str | Path,
    dst: str | Path,
    *,
    mislabel_rate: float = 0.2,
    bleed_rate: float = 0.2,
    seed: int = 0,
    subset: str = "train",
    kinds: tuple[str, ...] | list[str] = KINDS,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Write a corrupted copy of ``src`` to ``dst`` and return the truth table (also ``dst/corruptions.parquet``).

    ``kinds``: the kinds drawn (a subset of :data:`KINDS`; default all of them). Raises
    :class:`~curate.common.errors.StemcurateError` on a bad rate, seed, kind or output folder."""
    kinds = tuple(kinds)
    if unknown := [k for k in kinds if k not in KINDS]:
        raise StemcurateError(f"--kinds: unknown kind {', '.join(unknown)} (choose from {', '.join(KINDS)})")
    if not kinds:
        raise StemcurateError(f"--kinds: give at least one kind (choose from {', '.join(KINDS)})")
    for name, rate in (("--mislabel-rate", mislabel_rate), ("--bleed-rate", bleed_rate)):
        if not 0.0 <= rate <= 1.0:
            raise StemcurateError(f"{name} must be within 0-1, got {rate}")
    if seed < 0:
        raise StemcurateError(f"--seed must be 0 or more, got {seed}")
    src, dst = Path(src), output_path(dst)
    if dst.resolve() == src.resolve():
        raise StemcurateError(f"{dst}: output must differ from the source")
    if src.resolve() in dst.resolve().parents:
        raise StemcurateError(f"{dst}: output must not be inside the source {src}")
    if dst.exists() and not dst.is_dir():
        raise StemcurateError(f"{dst}: output exists and is not a folder")
    if dst.exists() and any(dst.iterdir()):
        raise StemcurateError(f"{dst}: output folder exists and is not empty")
    if (layout := detect_layout(src)) in WITHOUT_SIBLINGS:
        raise StemcurateError(f"{src}: a {layout} dataset has no tracks; curate corrupt mixes up the stems of a track")
    tracks = discover(src, subset=subset, layout=layout)
    if set(kinds) <= {SEPARATED} and mislabel_rate > 0 and all(len(t.stems) < 2 for t in tracks):
        raise StemcurateError(
            f"{src}: --kinds separated: every track has one stem; a separator's estimate needs siblings"
        )
    with atomic_dir(dst) as work:
        return _corrupt_tracks(
            src,
            work,
            tracks,
            mislabel_rate=mislabel_rate,
            bleed_rate=bleed_rate,
            seed=seed,
            subset=subset,
            kinds=kinds,
            progress=progress,
        )


def _corrupt_tracks(
    src: Path,
    dst: Path,
    tracks: list[Track],
    *,
    mislabel_rate: float,
    bleed_rate: float,
    seed: int,
    subset: str,
    kinds: tuple[str, ...],
    progress: Callable[[str], None] | None,
) -> pd.DataFrame:
    """The body of :func:`corrupt_dataset`: write every track's corrupted copy and the truth table into ``dst``."""
    rng = np.random.default_rng(seed)
    stem_kinds = [k for k in STEM_KINDS if k in kinds]
    leak_kinds = [k for k in LEAK_KINDS if k in kinds]
    rows: list[dict] = []
    cache: dict[str, tuple[dict[str, np.ndarray], int]] = {}

    def load(t: Track):
        if t.name not in cache:
            if len(cache) > 4:
                cache.pop(next(iter(cache)))
            stems, sr = t.load_all()  # an error naming a file with NaN/inf or absurd samples
            cache[t.name] = ({k: v.astype(np.float64) for k, v in stems.items()}, sr)
        return cache[t.name]

    def donor(exclude: Track, not_label: str, why: str) -> tuple[str, str, np.ndarray]:
        others = [t for t in tracks if t.name != exclude.name] or [exclude]
        for _ in range(20):
            t = others[int(rng.integers(len(others)))]
            stems, _ = load(t)
            names = [s for s in stems if s != not_label and _rms(stems[s]) > 1e-4]
            if names:
                s = names[int(rng.integers(len(names)))]
                return t.name, s, stems[s]
        raise StemcurateError(
            f"{src}: {why} in '{exclude.name}' needs a sounding stem other than '{not_label}'; none found"
        )

    for track in tracks:
        clean, sr = load(track)
        n = next(iter(clean.values())).shape[1]
        out = {k: v.copy() for k, v in clean.items()}
        labels = [s for s in clean if _rms(clean[s]) > 1e-4]
        done: set[str] = set()
        for stem in labels:
            if not stem_kinds or stem in done or rng.random() >= mislabel_rate:
                continue
            kind = stem_kinds[int(rng.integers(len(stem_kinds)))]
            partners = [s for s in labels if s != stem and s not in done]
            siblings = [s for s in labels if s != stem]
            if kind == SEPARATED:
                if siblings:  # a track with one stem has nothing to separate it from
                    rest = functools.reduce(np.add, [_fit(clean[s], n, clean[stem].shape[0]) for s in siblings])
                    out[stem], level, text = separated_stem(rng, clean[stem], rest)
                    where = dict(track=track.name, subset=subset, stem=stem, kind=SEPARATED, start=0, end=n)
                    rows.append(
                        dict(
                            where,
                            source_track=track.name,
                            source_stem=",".join(siblings),
                            leak_db=round(level, 2),
                            filter=text,
                        )
                    )
                    done.add(stem)
                continue
            if kind == "swap" and partners:
                other = partners[int(rng.integers(len(partners)))]
                out[stem], out[other] = clean[other].copy(), clean[stem].copy()
                where = dict(track=track.name, subset=subset, kind="swap", start=0, end=n, source_track=track.name)
                rows += [dict(where, stem=a, source_stem=b) for a, b in ((stem, other), (other, stem))]
                done |= {stem, other}
                continue
            why = f"'{kind}' of '{stem}'" + (" (no stem to swap with: a replacement)" if kind == "swap" else "")
            kind = "replace" if kind == "swap" else kind
            d_track, d_stem, d_audio = donor(track, stem, why)
            target = clean[stem]
            if kind == "replace":
                content = _fit(d_audio, n, target.shape[0], int(rng.integers(0, max(1, d_audio.shape[1] // 2))))
                out[stem] = content * (_rms(target) / max(_rms(content), 1e-9))
                a, b = 0, n
            else:
                length = int(min(n // 2, rng.uniform(3, 8) * sr))
                a = int(rng.integers(0, max(1, n - length)))
                b = a + length
                content = _active_excerpt(rng, d_audio, length, target.shape[0])
                ref = _rms(target[:, a:b]) or _rms(target)
                content = content * (ref / max(_rms(content), 1e-9))
                fade = min(int(0.01 * sr), length // 4)
                ramp = np.ones(length)
                ramp[:fade] = np.linspace(0, 1, fade)
                ramp[length - fade :] = np.linspace(1, 0, fade)
                out[stem][:, a:b] = target[:, a:b] * (1 - ramp) + content * ramp
            rows.append(
                dict(
                    track=track.name,
                    subset=subset,
                    stem=stem,
                    kind=kind,
                    start=a,
                    end=b,
                    source_track=d_track,
                    source_stem=d_stem,
                )
            )
            done.add(stem)
        mislabeled = {k: v.copy() for k, v in out.items()}  # leaks copy what the other files hold now
        for stem in labels:
            if not leak_kinds or rng.random() >= bleed_rate:
                continue
            others = [s for s in labels if s != stem]
            if others:
                rows += _add_leak(
                    rng,
                    out,
                    stem,
                    others,
                    mislabeled,
                    sr,
                    n,
                    leak_kinds[int(rng.integers(len(leak_kinds)))],
                    track=track.name,
                    subset=subset,
                )
        folder = dst / subset / track.name
        folder.mkdir(parents=True, exist_ok=True)
        for stem, x in out.items():
            audio_io.write(folder / f"{stem}.wav", x.astype(np.float32), sr, subtype="FLOAT")
        mix = functools.reduce(
            np.add, [x.astype(np.float32) for x in out.values()]
        )  # a mono stem goes to every channel
        audio_io.write(folder / f"{MIXTURE}.wav", mix, sr, subtype="FLOAT")
        if progress:
            progress(track.name)
    copy_subsets(src, dst, skip={subset})
    # the schema's column order whatever kind came first; nothing drawn: an empty truth table
    truth = (
        pd.DataFrame(rows, columns=CORRUPTIONS_SCHEMA.names) if rows else CORRUPTIONS_SCHEMA.empty_table().to_pandas()
    )
    write_corruptions(truth, dst / CORRUPTIONS_FILE)
    return truth


def _add_leak(
    rng: np.random.Generator,
    out: dict[str, np.ndarray],
    stem: str,
    others: list[str],
    sources: dict[str, np.ndarray],
    sr: int,
    n: int,
    kind: str,
    **where,
) -> list[dict]:
    """Add one leak of ``kind`` (see the module docstring) from ``sources`` into ``out[stem]``; its truth rows."""
    receiver_rms = _rms(out[stem])
    channels = out[stem].shape[0]
    if kind == "room":
        chosen = list(others)
        total_db = float(rng.uniform(-18, -6))
        share = rng.dirichlet(np.ones(len(chosen)))
        fc, rt60, drr = float(rng.uniform(1500, 8000)), float(rng.uniform(0.2, 0.8)), float(rng.uniform(0, 10))
        sos = signal.butter(2, fc, "low", fs=sr, output="sos")
        fname = f"room lowpass {int(fc)} Hz, RT60 {rt60:.2f} s, DRR {drr:.1f} dB"
        plan = [
            (
                o,
                total_db + 10 * np.log10(w),
                float(rng.uniform(1, 20)),
                fname,
                sos,
                room_response(rng, sr, channels, rt60, drr),
            )
            for o, w in zip(chosen, share)
        ]
    else:
        chosen = rng.choice(others, size=min(len(others), int(rng.integers(1, 3))), replace=False)
        plan = []
        for o in chosen:
            if kind == "console":
                fc = float(rng.uniform(1000, 5000))
                flat = rng.random() < 0.5
                sos = None if flat else signal.butter(1, fc, "high", fs=sr, output="sos")
                plan.append(
                    (
                        str(o),
                        float(rng.uniform(-24, -10)),
                        0.0,
                        "console flat" if flat else f"console highpass {int(fc)} Hz",
                        sos,
                        None,
                    )
                )
            else:
                leak_db, delay_ms = float(rng.uniform(-20, -6)), float(rng.uniform(0.5, 10))
                fname, sos = leak_filter(rng, sr)
                plan.append((str(o), leak_db, delay_ms, fname, sos, None))
    rows = []
    for other, leak_db, delay_ms, fname, sos, ir in plan:
        leak = make_leak(
            _fit(sources[other], n, channels), receiver_rms, leak_db, int(round(delay_ms * sr / 1000)), sos, ir
        )
        out[stem] = out[stem] + leak
        rows.append(
            dict(
                where,
                stem=stem,
                kind=kind,
                start=0,
                end=n,
                source_track=where["track"],
                source_stem=str(other),
                leak_db=round(leak_db, 2),
                delay_ms=round(delay_ms, 2),
                filter=fname,
            )
        )
    return rows
