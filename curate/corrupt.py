"""``curate corrupt``: write a label-noise copy of a dataset, with its ground truth.

Kinds of corruption (per stem of the corrupted subset):

* ``swap``: two stems of a track exchange their audio (both labels are wrong);
* ``replace``: the stem is replaced by another track's stem of another class, level-matched;
* ``partial``: a time range (3-8 s) of the stem is replaced by another track's stem of another class;
* ``bleed``: 1-2 other stem files of the same track leak in (as they are after the mislabels), each
  ``leak_db`` (-20...-6 dB) relative to the receiving stem's RMS, delayed 0.5-10 ms and filtered
  (low-, high-, band-pass or none).

A stem gets a mislabel kind with probability ``mislabel_rate`` and, independently, a leak with
probability ``bleed_rate``. ``mixture`` is the sum of the corrupted stems. Written as float32 WAV.
``DST/corruptions.parquet`` has one row per corruption (see :data:`curate.schema.CORRUPTIONS_SCHEMA`);
stems without a row are clean. Other subsets are copied unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import signal

from curate import audio as audio_io
from curate.datasets import MIXTURE, Track, copy_subsets, discover
from curate.errors import StemcurateError
from curate.schema import write_corruptions

MISLABEL_KINDS = ("swap", "replace", "partial")


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


def make_leak(source: np.ndarray, target_rms: float, leak_db: float, delay: int, sos: np.ndarray | None) -> np.ndarray:
    """``source`` (c, n) filtered, delayed by ``delay`` samples and scaled to ``leak_db`` re ``target_rms``."""
    x = signal.sosfilt(sos, source, axis=1) if sos is not None else source.astype(np.float64)
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
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Write a corrupted copy of ``src`` to ``dst`` and return the truth table (also ``dst/corruptions.parquet``)."""
    for name, rate in (("--mislabel-rate", mislabel_rate), ("--bleed-rate", bleed_rate)):
        if not 0.0 <= rate <= 1.0:
            raise StemcurateError(f"{name} must be within 0-1, got {rate}")
    src, dst = Path(src), Path(dst)
    if dst.exists() and any(dst.iterdir()):
        raise StemcurateError(f"{dst}: output folder exists and is not empty")
    if dst.resolve() == src.resolve():
        raise StemcurateError(f"{dst}: output must differ from the source")
    tracks = discover(src, subset=subset)
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    cache: dict[str, tuple[dict[str, np.ndarray], int]] = {}

    def load(t: Track):
        if t.name not in cache:
            if len(cache) > 4:
                cache.pop(next(iter(cache)))
            stems, sr = t.load_all()
            cache[t.name] = ({k: v.astype(np.float64) for k, v in stems.items()}, sr)
        return cache[t.name]

    def donor(exclude: Track, not_label: str) -> tuple[str, str, np.ndarray]:
        others = [t for t in tracks if t.name != exclude.name] or [exclude]
        for _ in range(20):
            t = others[int(rng.integers(len(others)))]
            stems, _ = load(t)
            names = [s for s in stems if s != not_label and _rms(stems[s]) > 1e-4]
            if names:
                s = names[int(rng.integers(len(names)))]
                return t.name, s, stems[s]
        raise StemcurateError(f"{src}: no donor stem of another class than {not_label} found")

    for track in tracks:
        clean, sr = load(track)
        n = next(iter(clean.values())).shape[1]
        out = {k: v.copy() for k, v in clean.items()}
        labels = [s for s in clean if _rms(clean[s]) > 1e-4]
        done: set[str] = set()
        for stem in labels:
            if stem in done or rng.random() >= mislabel_rate:
                continue
            kind = MISLABEL_KINDS[int(rng.integers(3))]
            partners = [s for s in labels if s != stem and s not in done]
            if kind == "swap" and partners:
                other = partners[int(rng.integers(len(partners)))]
                out[stem], out[other] = clean[other].copy(), clean[stem].copy()
                for a, b in ((stem, other), (other, stem)):
                    rows.append(dict(track=track.name, subset=subset, stem=a, kind="swap", start=0, end=n, source_track=track.name, source_stem=b))
                done |= {stem, other}
                continue
            if kind == "swap":
                kind = "replace"
            d_track, d_stem, d_audio = donor(track, stem)
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
            rows.append(dict(track=track.name, subset=subset, stem=stem, kind=kind, start=a, end=b, source_track=d_track, source_stem=d_stem))
            done.add(stem)
        mislabeled = {k: v.copy() for k, v in out.items()}  # leaks copy what the other files hold now
        for stem in labels:
            if rng.random() >= bleed_rate:
                continue
            others = [s for s in labels if s != stem]
            if not others:
                continue
            chosen = rng.choice(others, size=min(len(others), int(rng.integers(1, 3))), replace=False)
            receiver_rms = _rms(out[stem])
            for other in chosen:
                leak_db = float(rng.uniform(-20, -6))
                delay_ms = float(rng.uniform(0.5, 10))
                fname, sos = leak_filter(rng, sr)
                leak = make_leak(_fit(mislabeled[other], n, out[stem].shape[0]), receiver_rms, leak_db, int(round(delay_ms * sr / 1000)), sos)
                out[stem] = out[stem] + leak
                rows.append(dict(track=track.name, subset=subset, stem=stem, kind="bleed", start=0, end=n, source_track=track.name,
                                 source_stem=str(other), leak_db=round(leak_db, 2), delay_ms=round(delay_ms, 2), filter=fname))
        folder = dst / subset / track.name
        folder.mkdir(parents=True, exist_ok=True)
        for stem, x in out.items():
            audio_io.write(folder / f"{stem}.wav", x.astype(np.float32), sr, subtype="FLOAT")
        mix = np.sum([x.astype(np.float32) for x in out.values()], axis=0, dtype=np.float32)
        audio_io.write(folder / f"{MIXTURE}.wav", mix, sr, subtype="FLOAT")
        if progress:
            progress(track.name)
    copy_subsets(src, dst, skip={subset})
    truth = pd.DataFrame(rows)
    write_corruptions(truth, dst / "corruptions.parquet")
    return truth
