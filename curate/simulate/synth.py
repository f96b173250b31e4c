"""Synthetic demo dataset in MUSDB18-HQ layout whose stems sound like their labels.

Per track a random tempo, key, mode, chord progression and arrangement; four stems from the
instruments of :mod:`curate.simulate.instruments`, some with silence gaps (whole bars muted). ``mixture``
is the exact sample sum of the 16-bit stems (written as 16-bit PCM too, so mixture - sum(stems)
is exactly 0).
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curate.common.atomic import make_dir, write_text
from curate.common.errors import MAX_SEED, StemcurateError, as_int, as_number, as_path
from curate.common.outputs import output_path
from curate.data import audio as audio_io
from curate.data.conform import MIN_SAMPLE_RATE
from curate.data.datasets import DEFAULT_STEMS
from curate.simulate.instruments import apply_gaps, bass, drums, other, scale_notes, vocals

SAMPLE_RATE = 44100


@dataclass(frozen=True)
class TrackPlan:
    """The musical choices for one synthetic track (saved to ``synth.json``)."""

    name: str
    tempo: float
    key: int
    minor: bool
    progression: tuple[int, ...]
    timbres: tuple[str, ...]
    gaps: dict


def synth_track(
    name: str, seconds: float, rng: np.random.Generator, sr: int = SAMPLE_RATE
) -> tuple[dict[str, np.ndarray], TrackPlan]:
    """Render one track: ``{stem: int16 (2, samples)}`` including ``mixture``, and its plan."""
    n = int(round(seconds * sr))
    tempo = float(rng.uniform(80, 160))
    beat = 60.0 / tempo
    key = int(rng.integers(0, 12))
    minor = bool(rng.random() < 0.5)
    scale = scale_notes(key, minor)
    progression = tuple(int(d) for d in rng.choice([0, 3, 4, 5, 1, 2], size=4))
    timbres = tuple(rng.choice(["pad", "pluck", "organ"], size=int(rng.integers(1, 3)), replace=False))
    bars = int(np.ceil(n / (4 * beat * sr)))
    stems = {
        "vocals": vocals(rng, n, sr, beat, scale),
        "bass": bass(rng, n, sr, beat, [scale[d % 7] for d in progression]),
        "drums": drums(rng, n, sr, beat, bars),
        "other": other(rng, n, sr, beat, progression, scale, timbres),
    }
    levels_db = {"vocals": -16, "bass": -18, "drums": -17, "other": -19}
    for s, x in stems.items():
        rms = np.sqrt(np.mean(x**2)) + 1e-12
        stems[s] = x * (10 ** ((levels_db[s] + rng.uniform(-3, 3)) / 20) / rms)
    gaps = apply_gaps(rng, stems, n, sr, beat)
    total = sum(stems.values())
    peak = np.abs(total).max()
    scale_all = min(1.0, 0.89 / peak) if peak > 0 else 1.0
    ints = {s: np.round(x * scale_all * 32767).astype(np.int32) for s, x in stems.items()}
    mix = sum(ints.values())
    if np.abs(mix).max() > 32767:  # rounding can only overshoot by a few LSB; scale is chosen with margin
        raise RuntimeError("synthetic mixture clipped")
    out = {s: v.astype(np.int16) for s, v in ints.items()}
    out["mixture"] = mix.astype(np.int16)
    plan = TrackPlan(name, round(tempo, 2), key, minor, progression, timbres, gaps)
    return out, plan


MAX_SECONDS = 3600.0
"""Longest synthetic track, seconds (an hour: about 1.3 GB of float samples per stem)."""


MAX_TRACKS = 10000
"""Most tracks of one subset ``curate synth`` writes."""

MAX_SYNTH_RATE = 192000
"""Highest sample rate of ``curate synth``, Hz."""

_TRACK_NAME = re.compile(r"synth\d{3,}-\d{3,}")
"""A synthetic track's folder name, ``synth{seed:03d}-{index:03d}``."""


def synth_dataset(
    out_dir: str | Path,
    *,
    tracks: int = 12,
    test_tracks: int = 0,
    seconds: float = 10.0,
    seed: int = 0,
    sample_rate: int = SAMPLE_RATE,
    progress=None,
) -> list[TrackPlan]:
    """Write ``tracks`` train and ``test_tracks`` test tracks to ``out_dir`` in MUSDB18-HQ layout.

    Deterministic for a given ``seed``: track ``i`` uses its own generator seeded by ``(seed, i)``.
    ``progress`` is called with each finished track's name. Returns the plans (also in ``synth.json``).
    ``out_dir`` must be new, empty, or an earlier ``curate synth`` output (it has ``synth.json``): synthetic
    tracks are never mixed into another dataset (:class:`StemcurateError`), and an earlier synth's tracks
    that this call does not write again (another seed, fewer tracks) are removed.
    """
    out_dir = output_path(as_path(out_dir, "out_dir"))
    if not 1.0 <= as_number(seconds, "--seconds") <= MAX_SECONDS:
        raise StemcurateError(f"--seconds {seconds}: a synthetic track is 1 to {MAX_SECONDS:.0f} s long")
    as_int(seed, "--seed", low=0, high=MAX_SEED)
    as_int(tracks, "--tracks", low=0, high=MAX_TRACKS)
    as_int(test_tracks, "--test-tracks", low=0, high=MAX_TRACKS)
    as_int(sample_rate, "--sample-rate", low=MIN_SAMPLE_RATE, high=MAX_SYNTH_RATE)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "synth.json").is_file():
        raise StemcurateError(
            f"{out_dir}: not empty and not a curate synth dataset (no synth.json); "
            "synthetic tracks are not mixed into other data, choose a new folder"
        )
    make_dir(out_dir)
    plans = []
    jobs = [("train", i) for i in range(tracks)] + [("test", tracks + i) for i in range(test_tracks)]
    keep = {(subset, f"synth{seed:03d}-{i:03d}") for subset, i in jobs}
    for subset in ("train", "test"):  # an earlier synth's tracks that this one does not write again: never mixed in
        for old in sorted((out_dir / subset).glob("synth*-*")):
            if old.is_dir() and _TRACK_NAME.fullmatch(old.name) and (subset, old.name) not in keep:
                shutil.rmtree(old)
    for subset, i in jobs:
        rng = np.random.default_rng([seed, i])
        name = f"synth{seed:03d}-{i:03d}"
        stems, plan = synth_track(name, seconds, rng, sample_rate)
        folder = out_dir / subset / name
        folder.mkdir(parents=True, exist_ok=True)
        for s in ("mixture", *DEFAULT_STEMS):
            audio_io.write(folder / f"{s}.wav", stems[s], sample_rate, subtype="PCM_16")
        plans.append(plan)
        if progress:
            progress(name)
    meta = {"seed": seed, "seconds": seconds, "sample_rate": sample_rate, "tracks": [p.__dict__ for p in plans]}
    write_text(out_dir / "synth.json", json.dumps(meta, indent=1, default=list))
    return plans
