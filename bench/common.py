"""Helpers shared by the benchmarks: timing, the closing JSON line, ``--save``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RENDER = REPO.parent / "shared" / "tools" / "render_multitracks.py"
LEVELS = ("equal", "rendered")  # render(level=...): re-mixed with relevel, or as the renderer wrote them


def log(msg: str) -> None:
    """A time-stamped progress line on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


REAL_SONGS = REPO.parent / "shared" / "data" / "musdb18-7s" / "train"  # 94 real MUSDB18 excerpts of 6.8 s
N_TEST, N_VALID = 24, 8  # held-out test songs and validation songs of the fixed real-song split


def split_real_songs(folder: Path = REAL_SONGS) -> tuple[list[Path], list[Path], list[Path]]:
    """``(train, valid, test)`` song files of ``folder`` (``.stem.mp4``): a fixed permutation (seed 0) of the
    sorted names, ``N_TEST`` test songs, ``N_VALID`` validation songs, the rest (62 of 94) for training."""
    import numpy as np

    from curate.data.datasets import is_stem_mp4

    files = sorted(p for p in folder.iterdir() if is_stem_mp4(p.name))
    if len(files) < N_TEST + N_VALID + 8:
        raise SystemExit(f"{folder}: {len(files)} songs; the benchmark needs the 94 MUSDB18 excerpts")
    order = np.random.default_rng(0).permutation(len(files))
    test = sorted(files[i] for i in order[:N_TEST])
    valid = sorted(files[i] for i in order[N_TEST : N_TEST + N_VALID])
    train = sorted(files[i] for i in order[N_TEST + N_VALID :])
    return train, valid, test


def link_real_songs(data: Path, *, songs: Path = REAL_SONGS) -> tuple[list[str], list[str], list[str]]:
    """Link the real songs of ``songs`` into ``data/train`` (training and validation songs) and ``data/test``
    (:func:`split_real_songs`); ``(train, valid, test)`` track names."""
    from curate.data.datasets import stem_mp4_track

    train, valid, test = split_real_songs(songs)
    for subset, files in (("train", train + valid), ("test", test)):
        (data / subset).mkdir(parents=True, exist_ok=True)
        for f in files:
            link = data / subset / f.name
            if not link.exists():
                link.symlink_to(f.resolve())
    return tuple([stem_mp4_track(f) for f in group] for group in (train, valid, test))


def render(
    out: Path, *, train: int, test: int = 0, seconds: float = 20.0, seed: int = 0, level: str = "rendered"
) -> None:
    """A MUSDB18-HQ-style dataset rendered from MIDI with ``../shared/tools/render_multitracks.py``.

    ``level="equal"`` then re-mixes every track with :func:`relevel` (stems at equal loudness);
    ``"rendered"`` keeps the renderer's levels.
    """
    if level not in LEVELS:
        raise SystemExit(f"unknown level {level!r} ({', '.join(LEVELS)})")
    if not RENDER.exists():
        raise SystemExit(f"{RENDER} not found")
    cmd = [
        sys.executable,
        str(RENDER),
        str(out),
        "--num-train",
        str(train),
        "--num-test",
        str(test),
        "--seconds",
        str(seconds),
        "--seed",
        str(seed),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(
            f"render failed (needs fluidsynth fluid-soundfont-gm freedoom and mido):\n{res.stderr[-2000:]}"
        )
    short = test - len(list((out / "test").glob("*/mixture.wav")))
    if short > 0:  # fewer songs have an excerpt this long than asked for: the rest of the test split at 20 s
        _top_up(out / "test", short, seed=seed)
    if level == "equal":
        for track in sorted(p for p in out.glob("*/*") if (p / "mixture.wav").is_file()):
            relevel(track, seed=seed)


def _usable_songs(seconds: float) -> list[str]:
    """Names of the songs the renderer can take an excerpt of ``seconds`` from."""
    res = subprocess.run(
        [sys.executable, str(RENDER), "/nonexistent", "--list", "--seconds", str(seconds)],
        capture_output=True,
        text=True,
        check=True,
    )
    return [line.strip().split("  (")[0] for line in res.stdout.splitlines()[1:] if line.startswith("  ")]


def _top_up(folder: Path, count: int, *, seed: int, seconds: float = 20.0) -> None:
    """Render ``count`` more songs of ``seconds`` into ``folder``, taken from the usable songs that no
    subset next to it holds yet (in the renderer's listing order; an error when there are too few)."""
    taken = {p.name for p in folder.parent.glob("*/*")}
    spare = [s for s in _usable_songs(seconds) if s not in taken][:count]
    if len(spare) < count:
        raise SystemExit(f"the renderer has only {len(spare)} more songs for {folder}, {count} wanted")
    for song in spare:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [
                sys.executable,
                str(RENDER),
                tmp,
                "--num-train",
                "0",
                "--num-test",
                "1",
                "--seconds",
                str(seconds),
                "--seed",
                str(seed),
                "--songs",
                song,
            ]
            res = subprocess.run(cmd, capture_output=True, text=True)
            got = Path(tmp) / "test" / song
            if res.returncode != 0 or not got.is_dir():
                raise SystemExit(f"render of {song} failed:\n{res.stderr[-2000:]}")
            shutil.move(str(got), str(folder / song))


def active_power(x, sample_rate: int, *, frame_s: float = 0.5, floor_db: float = -40.0) -> float:
    """Mean power of ``x`` ``(channels, samples)`` over its active frames: those within ``floor_db`` dB of the
    loudest frame."""
    import numpy as np

    n = max(1, int(frame_s * sample_rate))
    m = x.shape[-1] // n
    if m == 0:
        return float(np.mean(x**2))
    p = np.mean(x[:, : m * n].reshape(x.shape[0], m, n) ** 2, axis=(0, 2))
    top = float(p.max())
    return float(p[p >= top * 10 ** (floor_db / 10)].mean()) if top > 0 else 0.0


def relevel(track: Path, *, seed: int = 0, jitter_db: float = 3.0, peak_db: float = -1.0) -> dict[str, float]:
    """Re-mix one rendered track so that its stems are about equally loud, as in produced music.

    The renderer keeps the MIDI files' channel volumes, which put the vocal line 10-21 dB under the
    rest of the mix in some songs (a real MUSDB18 excerpt: -1.6 dB). Each stem of ``track`` is scaled
    so that its power over its active frames is the same, times a random ``+-jitter_db`` dB (seeded by
    ``seed`` and the track's name); the stems are then scaled together so that the loudest of the
    mixture and stems peaks at ``peak_db`` dBFS, quantised to 16 bits, and the mixture rewritten as
    their exact sum. Returns each stem's gain in dB.
    """
    import zlib

    import numpy as np

    from curate.data import audio
    from curate.data.datasets import DEFAULT_STEMS, MIXTURE

    rng = np.random.default_rng([seed, zlib.crc32(track.name.encode())])
    stems, sr = {}, None
    for s in DEFAULT_STEMS:
        x, sr = audio.read(track / f"{s}.wav")  # float32 holds 16-bit samples exactly
        stems[s] = x.astype(np.float64)
    gains = {}
    for s, x in stems.items():
        p = active_power(x, sr)
        gains[s] = (-10 * np.log10(p) if p > 0 else 0.0) + rng.uniform(-jitter_db, jitter_db)
        stems[s] = x * 10 ** (gains[s] / 20)
    mix = sum(stems.values())
    peak = max(np.abs(mix).max(), *(np.abs(x).max() for x in stems.values()))
    scale = 10 ** (peak_db / 20) / peak * 32767
    ints = {s: np.round(x * scale).astype(np.int32) for s, x in stems.items()}
    mix_i = sum(ints.values())
    if np.abs(mix_i).max() > 32767:  # cannot happen with peak_db < -0.01 and four stems; checked, not assumed
        raise RuntimeError(f"{track}: re-levelled mixture clips")
    for s, x in {**ints, MIXTURE: mix_i}.items():
        audio.write(
            track / f"{s}.wav", x.astype(np.int16), sr, subtype="PCM_16"
        )  # atomic: a killed run leaves no torn file
    db_scale = 20 * np.log10(scale / 32767)
    return {s: round(float(g + db_scale), 2) for s, g in gains.items()}


def best_time(fn, repeat: int = 5) -> float:
    """Smallest wall time of ``repeat`` calls of ``fn`` in seconds (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def commit() -> str:
    """The current commit hash, with ``-dirty`` when the work tree has changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True
        ).stdout
        # documentation (earlier --save output, docs/, the README) does not change what is measured
        dirty = [line for line in status.splitlines() if not line[3:].startswith(("docs/", "README.md"))]
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def finish(name: str, figures: dict, save: bool) -> None:
    """Print ``figures`` as the last line (one JSON object); with ``save`` also write docs/benchmarks/NAME.json."""
    if save:
        out = REPO / "docs" / "benchmarks" / f"{name}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({**figures, "commit": commit()}, indent=1) + "\n")
    print(json.dumps(figures))
