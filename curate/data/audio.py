"""Audio file I/O with soundfile: float32 ``(channels, samples)`` arrays at the file's rate."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from curate.common.atomic import atomic_path, system_error
from curate.common.errors import StemcurateError

AUDIO_EXTENSIONS = (".wav", ".flac")


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says: rate in Hz, channel count, length in samples."""

    sample_rate: int
    channels: int
    frames: int


def info(path: str | Path) -> AudioInfo:
    """Header information of a wav/flac file; :class:`StemcurateError` when it can't be opened."""
    try:
        i = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise StemcurateError(f"{path}: cannot open audio ({_short(exc, path)})") from None
    return AudioInfo(int(i.samplerate), int(i.channels), int(i.frames))


def bit_depth(path: str | Path) -> str:
    """The sample format a file holds as export names it: ``"16"`` (8- or 16-bit PCM), ``"24"`` or
    ``"float"`` (32-bit PCM, float, double; also anything else soundfile decodes, lossy or not, as the
    safe choice); :class:`StemcurateError` when it can't be opened."""
    try:
        subtype = sf.info(str(path)).subtype
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise StemcurateError(f"{path}: cannot open audio ({_short(exc, path)})") from None
    return {"PCM_S8": "16", "PCM_U8": "16", "PCM_16": "16", "PCM_24": "24"}.get(subtype, "float")


def read(path: str | Path, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, int]:
    """Read samples ``[start, stop)`` of a wav/flac file.

    Returns ``(audio, sample_rate)`` with audio float32 of shape ``(channels, samples)``.
    Only the requested range is decoded. :class:`StemcurateError` naming the file when it does not
    decode, or is a WAV that reads empty while audio follows its header (:func:`unfinalised_wav`).
    """
    try:
        data, sr = sf.read(str(path), start=start, stop=stop, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise StemcurateError(f"{path}: cannot decode audio ({_short(exc, path)})") from None
    if start == 0 and stop is None and str(path).lower().endswith(".wav"):  # all of it: not cut by its header
        why = unfinalised_wav(path)
        if why:
            raise StemcurateError(f"{path}: {why}")
    return np.ascontiguousarray(data.T), int(sr)


def write(path: str | Path, audio: np.ndarray, sample_rate: int, *, subtype: str | None = None) -> Path:
    """Write ``audio`` ``(channels, samples)`` atomically; format from the extension (wav, flac, mp3)."""
    path = Path(path)
    audio = np.asarray(audio)
    if audio.ndim != 2:
        raise ValueError(f"audio must be (channels, samples), got shape {audio.shape}")
    fmt = {".wav": "WAV", ".flac": "FLAC", ".mp3": "MP3"}.get(path.suffix.lower())
    if fmt is None:
        raise StemcurateError(f"{path}: unsupported audio extension (use .wav, .flac or .mp3)")
    if fmt == "MP3":
        subtype = "MPEG_LAYER_III"
    with atomic_path(path) as tmp:
        try:
            sf.write(str(tmp), audio.T, sample_rate, subtype=subtype, format=fmt)
        except sf.LibsndfileError as exc:  # a full disk, a quota: libsndfile's error, not an OSError
            raise StemcurateError(f"{path}: cannot write ({system_error(tmp.parent) or exc.error_string})") from None
        except (ValueError, TypeError) as exc:  # a subtype the format does not take
            raise StemcurateError(f"{path}: cannot write ({exc})") from None
    return path


def _wav_data_chunk(path: str | Path) -> tuple[int, int, int, int] | None:
    """``(block_align, rate in Hz, declared data bytes, bytes after the data chunk's header)`` of a RIFF/WAVE file, None
    if not a plain WAV (or an RF64/streamed one, whose size field is 0xFFFFFFFF)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            block_align = rate = None
            while True:
                hdr = fh.read(8)
                if len(hdr) < 8:
                    return None
                cid, size = hdr[:4], struct.unpack("<I", hdr[4:])[0]
                if cid == b"fmt ":
                    fmt = fh.read(size)
                    if len(fmt) >= 14:
                        rate, block_align = struct.unpack("<I", fmt[4:8])[0], struct.unpack("<H", fmt[12:14])[0]
                    fh.seek(size % 2, 1)
                elif cid == b"data":
                    if not block_align or size == 0xFFFFFFFF:
                        return None
                    return block_align, rate, size, os.fstat(fh.fileno()).st_size - fh.tell()
                else:
                    fh.seek(size + size % 2, 1)
    except OSError:
        return None


def wav_declared_frames(path: str | Path) -> int | None:
    """Frames that a RIFF/WAVE header declares in its ``data`` chunk, or None if not a plain WAV.

    libsndfile silently shortens truncated WAV files to the bytes present; comparing this
    with the decoded length tells that the file was cut.
    """
    chunk = _wav_data_chunk(path)
    return None if chunk is None else chunk[2] // chunk[0]


def _chunks_to_end(path: str | Path, offset: int) -> bool:
    """Whether the bytes of ``path`` from ``offset`` are whole RIFF chunks (``LIST``, ``id3 ``...) to its end,
    give or take a few padding bytes."""
    with open(path, "rb") as fh:
        end = os.fstat(fh.fileno()).st_size
        while end - offset >= 8:
            fh.seek(offset)
            head = fh.read(8)
            size = struct.unpack("<I", head[4:])[0]
            if not all(32 <= c < 127 for c in head[:4]) or offset + 8 + size > end:
                return False
            offset += 8 + size + size % 2
    return True


def unfinalised_wav(path: str | Path) -> str | None:
    """Why ``path`` reads shorter than the audio it holds: a WAV whose ``data`` chunk declares fewer samples
    than follow it, and not because other chunks follow (a recorder stopped before it wrote the sizes into
    the header: every reader then sees an empty or cut file), with the samples (and seconds) that follow.
    A declared size within 0.1 s of the end is left alone (padding). None for any other file."""
    chunk = _wav_data_chunk(path)
    if chunk is None:
        return None
    align, sr, size, after = chunk
    declared, frames = size // align, after // align
    if frames <= declared or (size and (frames - declared) < 0.1 * (sr or 44100)):
        return None
    try:
        if size and _chunks_to_end(path, os.path.getsize(path) - after + size + size % 2):
            return None
    except OSError:
        return None
    length = f" ({frames / sr:.2f} s)" if sr else ""
    return (
        f"header declares {declared} samples but {frames} follow it{length}: a recording whose header was not "
        "finalised; rewrite it (ffmpeg -ignore_length 1 -i IN -c copy OUT reads to the end of the file)"
    )


def _short(exc: BaseException, path: str | Path | None = None) -> str:
    if path is not None and Path(path).is_symlink() and not Path(path).exists():
        return f"broken symbolic link to {os.readlink(path)}"
    text = str(exc).strip().splitlines()
    if path is not None and Path(path).is_file() and text and "does not exist or is not a regular file" in text[0]:
        return "not an audio file libsndfile can read: unknown or corrupt format"  # its message for a file of garbage
    return text[0] if text else type(exc).__name__
