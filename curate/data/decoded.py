"""Decoded copies of MUSDB18 ``.stem.mp4`` files, so that a read seeks in a WAV instead of decoding AAC.

Training reads short crops of every song in random order; decoding the whole ``.stem.mp4`` through
ffmpeg for each read made 30 training steps of the tiny model on the 94 excerpts of
``musdb18-7s`` take 118 s, against 23 s on the same songs as WAV. Here each file is decoded once,
each stream at its own rate, into float32 WAV files that hold the decoder's own samples (bit for bit:
the scan, training and evaluation read the same numbers as without the cache, through the same
decoder)::

    <cache>/<sha1 of the file's resolved path, size and modification time>/<stream>.wav

``<cache>`` is ``$STEMCURATE_CACHE``, else ``$XDG_CACHE_HOME/stemcurate/decoded``, else
``~/.cache/stemcurate/decoded``; ``STEMCURATE_CACHE=off`` decodes on every read (nothing written).
Each entry ends with an ``info.json`` (streams; frames and rate of each); an entry that does not match it
(a file truncated or deleted since) is decoded again.
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
import re
import shutil
import subprocess
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
                if f.frames == info["frames"][stream] and f.samplerate == info["sample_rate"][stream]:
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
    """The entry's ``info.json`` (streams; frames and rate of each), written last: None when missing or
    unreadable."""
    try:
        info = json.loads((entry / INFO).read_text())
        if not {"streams", "frames", "sample_rate"} <= set(info):
            return None
        per_stream = all(
            isinstance(info[k], list) and len(info[k]) == info["streams"] for k in ("frames", "sample_rate")
        )
        return info if per_stream else None  # an entry of the older layout (one length and rate): decoded again
    except (OSError, ValueError, TypeError):
        return None


def _fill(path: Path, entry: Path) -> None:
    """Decode every stream of ``path`` into the entry folder ``entry`` (temporary folder, then rename)."""
    streams = [_decode_stream(str(path), k) for k in range(len(_audio_streams(str(path))))]
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.parent / f".{entry.name}.{uuid.uuid4().hex}.tmp"
    try:
        tmp.mkdir()
        for k, (x, sr) in enumerate(streams):
            sf.write(str(tmp / f"{k}.wav"), x.T, sr, subtype="FLOAT")
        info = {
            "streams": len(streams),
            "frames": [int(x.shape[1]) for x, _ in streams],
            "sample_rate": [int(sr) for _, sr in streams],
        }
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


def _ffmpeg_reason(stderr: str) -> str:
    """What ffmpeg's or ffprobe's error output says is wrong, in one line: the demuxer's or decoder's own
    finding (``moov atom not found``: the file is cut short) and the final verdict, without the component
    and path prefixes; a plain reason when it says nothing."""
    found = []
    for line in stderr.splitlines():
        line = re.sub(r"^\[[^]]*@ 0x[0-9a-f]+\]\s*", "", line.strip())
        if line.startswith(("/", ".")) and ": " in line:  # "<path>: Invalid data found ..."
            line = line.split(": ", 1)[1]
        if line and not line.lower().startswith(("conversion failed", "error opening input")) and line not in found:
            found.append(line)
    if not found:
        return "not a readable MP4 file"
    if any("moov atom not found" in line for line in found):  # the index MP4 writes last
        return "cut short, or not an MP4 file: moov atom not found"
    return found[0] if len(found) == 1 else f"{found[0]}; {found[-1]}"


def _audio_streams(path: str) -> tuple[tuple[int, int, int], ...]:
    """``(stream index, channels, rate in Hz)`` of every audio stream of ``path``, from ffprobe (once per
    version of the file). :class:`StemcurateError` naming the file when ffprobe cannot read it or it holds
    no audio."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise StemcurateError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    return _probe(path, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _probe(path: str, size: int, mtime_ns: int) -> tuple[tuple[int, int, int], ...]:
    if size == 0:
        raise StemcurateError(f"{path}: cannot decode (empty file, 0 bytes)")
    require_ffmpeg(path)
    cmd = ["ffprobe", "-v", "error", "-show_streams", "-select_streams", "a", "-of", "json", path]
    done = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    if done.returncode != 0:
        raise StemcurateError(f"{path}: cannot decode ({_ffmpeg_reason(done.stderr)})")
    try:
        streams = json.loads(done.stdout or "{}").get("streams", [])
        out = tuple((int(st["index"]), int(st["channels"]), int(st["sample_rate"])) for st in streams)
    except (ValueError, KeyError, TypeError):
        raise StemcurateError(f"{path}: cannot decode (ffprobe gives no stream layout)") from None
    if not out:
        raise StemcurateError(f"{path}: cannot decode (no audio stream)")
    return out


def _decode_stream(path: str, stream: int) -> tuple[np.ndarray, int]:
    """Stream ``stream`` (0: the first audio stream) of ``path`` at its own rate and channel count: float32
    ``(channels, samples)`` and the rate in Hz. The one decoder of both read paths (through the cache and
    without it). :class:`StemcurateError` naming the file and saying what is wrong."""
    streams = _audio_streams(path)
    if not 0 <= stream < len(streams):
        raise StemcurateError(f"{path}: no stream {stream} (it has {len(streams)} streams)")
    index, channels, rate = streams[stream]
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", path, "-map", f"0:{index}", "-f", "f32le", "-ac", str(channels)]
    done = subprocess.run(cmd + ["-ar", str(rate), "pipe:1"], capture_output=True)
    err = done.stderr.decode("utf-8", "replace")
    if done.returncode != 0:
        raise StemcurateError(f"{path}: cannot decode stream {stream} ({_ffmpeg_reason(err)})")
    data = np.frombuffer(done.stdout, dtype="<f4")
    if data.size == 0:
        reason = _ffmpeg_reason(err) if err.strip() else "no samples"
        raise StemcurateError(f"{path}: cannot decode stream {stream} ({reason})")
    data = data[: data.size - data.size % channels].reshape(-1, channels)
    return np.ascontiguousarray(data.T.astype(np.float32)), rate


@functools.lru_cache(maxsize=8)
def _decode(path: str, stream: int) -> tuple[np.ndarray, int]:
    """One stream of ``path`` decoded in memory (without the cache), the last 8 kept."""
    return _decode_stream(path, stream)


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
