"""Decoded copies of MUSDB18 ``.stem.mp4`` files, so that a read seeks in a WAV instead of decoding AAC.

Training reads short crops of every song in random order; decoding the whole ``.stem.mp4`` through
ffmpeg for each read made 30 training steps of the tiny model on the 94 excerpts of
``musdb18-7s`` take 118 s, against 23 s on the same songs as WAV. Here each file is decoded once,
all of its streams in one ffmpeg call, into float32 WAV files that hold the decoder's own samples
(bit for bit: the scan, training and evaluation read the same numbers as without the cache)::

    <cache>/<sha1 of the file's resolved path, size and modification time>/<stream>.wav

``<cache>`` is ``$STEMCURATE_CACHE``, else ``$XDG_CACHE_HOME/stemcurate/decoded``, else
``~/.cache/stemcurate/decoded``; ``STEMCURATE_CACHE=off`` decodes on every read (nothing written).
Each entry ends with an ``info.json`` (streams, frames, rate); an entry that does not match it (a
file truncated or deleted since) is decoded again.
Size: float32 stereo at 44.1 kHz is 21 MB per minute of one stream, so about 106 MB per minute of
a five-stream song (a 4-minute MUSDB18 song: 0.42 GB; the 150 songs: about 60 GB; a 7-s excerpt:
12 MB). A file that changed (size or modification time) gets a new entry; :func:`clear` removes
them all. An entry is written to a temporary folder and renamed into place, so an interrupted
decode leaves nothing that a later read would take for complete, and processes that decode the
same file at once each finish with the same entry. Where the cache cannot be written (a read-only
home), reads decode as without it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import sys
import uuid
from pathlib import Path

import numpy as np
import soundfile as sf

from curate.common.errors import StemcurateError

CACHE_ENV = "STEMCURATE_CACHE"
INFO = "info.json"
OFF = "off"


def cache_root() -> Path | None:
    """The cache folder (see the module docstring); None when ``STEMCURATE_CACHE=off``."""
    value = os.environ.get(CACHE_ENV, "")
    if value.lower() == OFF:
        return None
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "stemcurate" / "decoded"


def entry_for(path: str | os.PathLike) -> Path | None:
    """The cache entry (a folder) of the ``.stem.mp4`` ``path`` as it is now; None without a cache."""
    root = cache_root()
    if root is None:
        return None
    path = Path(path).resolve()
    st = path.stat()
    key = hashlib.sha1(f"{path}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:24]
    return root / key


def read_stream(
    path: str | os.PathLike, stream: int, start: int = 0, stop: int | None = None
) -> tuple[np.ndarray, int]:
    """Samples ``[start, stop)`` of stream ``stream`` of the ``.stem.mp4`` ``path``: float32
    ``(channels, samples)`` and the rate in Hz, through the cache (the first read of a file decodes all
    of its streams). :class:`StemcurateError` naming the file when it does not decode or has no such stream."""
    try:
        entry = entry_for(path)
    except OSError as exc:
        raise StemcurateError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    for _ in (0, 1):
        info = None if entry is None else _info(entry)  # read once per pass: this is every training read
        if entry is not None and info is None:  # missing, or damaged since: decode (again)
            try:
                shutil.rmtree(entry, ignore_errors=True)
                _fill(Path(path), entry)
                info = _info(entry)
            except OSError as exc:  # an unwritable cache: decode without it
                why = exc.strerror or exc
                _warn_once(f"warning: cannot write the decode cache {entry.parent} ({why}); decoding on every read")
                entry = None
        if entry is None:
            full, sr = _decode(str(path), stream)
            return full[:, start:stop], sr
        info = info or {"streams": 0}
        if not 0 <= stream < info["streams"]:
            raise StemcurateError(f"{path}: no stream {stream} (it has {info['streams']} streams)")
        try:
            with sf.SoundFile(str(entry / f"{stream}.wav")) as f:
                if f.frames == info["frames"] and f.samplerate == info["sample_rate"]:
                    n = f.frames
                    a = min(max(start, 0), n)
                    b = n if stop is None else min(max(stop, a), n)
                    f.seek(a)
                    data = f.read(b - a, dtype="float32", always_2d=True)
                    if len(data) == b - a:
                        return np.ascontiguousarray(data.T), int(f.samplerate)
        except (sf.LibsndfileError, RuntimeError, OSError):
            pass
        shutil.rmtree(entry, ignore_errors=True)  # a damaged entry: the next pass decodes it again
    raise StemcurateError(f"{path}: the decode cache entry {entry} stays unreadable after decoding again")


def _info(entry: Path) -> dict | None:
    """The entry's ``info.json`` (streams, frames, rate), written last: None when missing or unreadable."""
    try:
        info = json.loads((entry / INFO).read_text())
        return info if {"streams", "frames", "sample_rate"} <= set(info) else None
    except (OSError, ValueError, TypeError):
        return None


def _fill(path: Path, entry: Path) -> None:
    """Decode every stream of ``path`` into the entry folder ``entry`` (temporary folder, then rename)."""
    streams, sr = _decode_all(str(path))
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.parent / f".{entry.name}.{uuid.uuid4().hex}.tmp"
    try:
        tmp.mkdir()
        for k, x in enumerate(streams):
            sf.write(str(tmp / f"{k}.wav"), x.T, sr, subtype="FLOAT")
        frames = {x.shape[1] for x in streams}
        info = {"streams": len(streams), "frames": max(frames) if frames else 0, "sample_rate": sr}
        (tmp / INFO).write_text(json.dumps(info))
        try:
            os.replace(tmp, entry)
        except OSError:
            if not entry.is_dir():  # another process finished first: keep its entry
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def require_ffmpeg(path) -> None:
    """:class:`StemcurateError` naming ``path`` when ffmpeg or ffprobe is missing."""
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        raise StemcurateError(f"{path}: reading .stem.mp4 needs ffmpeg and ffprobe (apt-get install -y ffmpeg)")


def _decode_error(path, what: str, exc: Exception) -> StemcurateError:
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return StemcurateError(f"{path}: cannot decode {what} ({detail})")


def _decode_all(path: str) -> tuple[list[np.ndarray], int]:
    """Every stream of ``path``: float32 ``(channels, samples)`` arrays and the rate in Hz."""
    require_ffmpeg(path)
    import stempeg

    try:
        data, sr = stempeg.read_stems(path, dtype=np.float32, always_3d=True)
    except Exception as exc:  # stempeg raises bare Exceptions and ffmpeg errors
        raise _decode_error(path, "its streams", exc) from None
    return [np.ascontiguousarray(np.asarray(s, dtype=np.float32).T) for s in data], int(sr)


@functools.lru_cache(maxsize=8)
def _decode(path: str, stream: int) -> tuple[np.ndarray, int]:
    """One stream of ``path`` decoded in memory (without the cache), the last 8 kept."""
    require_ffmpeg(path)
    import stempeg

    try:
        data, sr = stempeg.read_stems(path, stem_id=stream, dtype=np.float32)
    except Exception as exc:
        raise _decode_error(path, f"stream {stream}", exc) from None
    data = np.asarray(data, dtype=np.float32)
    if data.ndim == 1:
        data = data[:, None]
    return np.ascontiguousarray(data.T), int(sr)


@functools.lru_cache(maxsize=None)
def _warn_once(message: str) -> None:
    print(message, file=sys.stderr)


def usage(root: Path | None = None) -> tuple[Path | None, int, int]:
    """``(folder, entries, bytes)`` of the cache as it is now (0, 0 when it does not exist)."""
    root = cache_root() if root is None else root
    if root is None or not root.is_dir():
        return root, 0, 0
    entries = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    size = sum(f.stat().st_size for e in entries for f in e.glob("*.wav"))
    return root, len(entries), size


def clear(root: Path | None = None) -> int:
    """Remove every entry of the cache; the bytes freed."""
    root, _, size = usage(root)
    if root is not None and root.is_dir():
        for p in root.iterdir():
            if p.is_dir() and (len(p.name) == 24 or p.name.endswith(".tmp")):
                shutil.rmtree(p, ignore_errors=True)
    return size
