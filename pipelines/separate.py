"""``pipelines separate``: separate wav/mp3/flac files (or folders of them) into stems.

Outputs ``OUT/<song>/<target>.<format>`` at the model's rate (44.1 kHz), and ``no_<target>``
(input minus target) with ``residual``. Files that fail to decode, hold NaN or infinite samples or
impossible levels (:mod:`curate.data.conform`), are reported and skipped; a file with more channels
than the models take has its first ones separated (front left and right of a 5.1 file) and is
listed; every output is written atomically, so an interrupted run leaves no half-written file. Song folders are
named by :func:`pipelines.songs.output_folders` (an existing song's stems never move; a shared name gets the rest of
the input's own name: ``OUT/song_wav``, ``OUT/song_mp3``), and the report lists the renamed ones.
Samples beyond full scale are handled by ``clip_mode`` (as demucs does): ``rescale`` (the
file is scaled so that its peak is just below full scale), ``clamp`` (cut at ±1) or ``none`` (float
files keep them; integer formats then saturate), and the report says which files were touched.
Each song folder gets a hidden :data:`MARKER` file naming its input: a song folder that exists may
be written again only when it holds one (an earlier separation) or nothing, so the stems of a
dataset (``-o DATA/test``) or other files of the user's are never replaced; that is refused before
any work.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bsrnn.errors import BSRNNError, CheckpointError, DeviceError
from bsrnn.separator import Separator
from curate.common.atomic import filling_dir
from curate.common.errors import StemcurateError
from curate.common.outputs import output_path
from curate.data import audio as audio_io
from curate.data.conform import audio_problem, to_channels
from pipelines.songs import (  # noqa: F401 - the song names are part of this module's API
    INPUT_EXTENSIONS,
    MARKER,
    find_inputs,
    input_extension,
    input_id,
    input_root,
    marker_source,
    output_folder,
    output_folders,
)


def read_input(path: Path) -> tuple[np.ndarray, int]:
    """Samples ``(channels, samples)`` float32 and rate (Hz) of an input file: a ``.stem.mp4``'s mixture stream
    (through the decode cache, :mod:`curate.data.decoded`), any other file as it is. :class:`StemcurateError`
    naming the file when it cannot be read."""
    if input_extension(path) == ".stem.mp4":
        from curate.data.decoded import read_stream

        return read_stream(path, 0)
    return audio_io.read(path)


FORMATS = ("wav", "flac", "mp3")
BITS = {"16": "PCM_16", "24": "PCM_24", "float": "FLOAT"}
CLIP_MODES = ("rescale", "clamp", "none")


@dataclass
class SeparationReport:
    """What :func:`separate_files` wrote and which inputs it skipped (with the reason)."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    renamed: list[tuple[Path, Path, str]] = field(default_factory=list)
    """Inputs whose song folder is not :func:`output_folder`'s: (file, folder, why)."""
    clipped: list[tuple[Path, str, float]] = field(default_factory=list)
    """Outputs whose peak was above full scale: (file, what was done, peak before)."""
    channels: list[tuple[Path, int]] = field(default_factory=list)
    """Inputs with more channels than the models take: (file, its channels); their first ones were separated."""
    separated: int = 0


def load_separator(
    sources: list[Path] | None, targets: list[str] | None, *, device: str = "cpu", **options
) -> Separator:
    """:meth:`Separator.from_checkpoint` of the sources (none: ``saved_models``), only ``targets`` when
    given, with a bad ``frame_s``/``hop_s`` named as ``--frame/--hop``. ``options``: ``frame_s``,
    ``hop_s``, ``batch_size``, ``precision``. A bad model source is a :class:`~bsrnn.errors.CheckpointError`."""
    try:
        return Separator.from_checkpoint(sources, targets=targets, device=device, **options)
    except (CheckpointError, DeviceError):
        raise
    except BSRNNError as exc:
        msg = str(exc)
        option = next(
            (o for k, o in (("precision", "--precision"), ("batch_size", "--batch-size")) if msg.startswith(k)),
            "--frame/--hop",
        )
        raise StemcurateError(f"{option}: {exc}") from None


def _is_dataset(root: Path, subsets) -> bool:
    """Whether ``root`` holds tracks of any of ``subsets``."""
    from curate.data.datasets import discover

    for subset in subsets:
        try:
            if discover(root, subset=subset, layout="musdb"):
                return True
        except StemcurateError:
            pass
    return False


def check_song_folders(folders, out_dir: str | Path) -> None:
    """:class:`StemcurateError` when the output folder ``out_dir`` is a training run, holds exported
    models, or is a dataset (or one of its subset folders: the stems would be read as its tracks), or
    naming the first song folder that exists but is neither empty nor an earlier separation (no
    :data:`MARKER`), or is a file: its files are not ``pipelines separate``'s to replace."""
    from bsrnn.checkpoint import saved_model_files
    from curate.data.datasets import SUBSETS
    from pipelines.runs import RunDir

    out_dir = output_path(out_dir)
    if out_dir.is_dir():
        if RunDir(out_dir).is_run():
            raise StemcurateError(
                f"{out_dir}: is a training run folder; write the separated stems elsewhere (--output)"
            )
        if saved_model_files(out_dir):
            raise StemcurateError(
                f"{out_dir}: holds exported models (a saved_models folder); write the separated stems elsewhere "
                f"(--output)"
            )
    real = out_dir.resolve()  # through symbolic links: where the stems would land
    for root in (real, real.parent, real.parent.parent):  # the dataset itself, a subset folder, a track folder
        inside = real.relative_to(root).parts
        if (not inside or inside[0] in SUBSETS) and root.is_dir() and _is_dataset(root, inside[:1] or SUBSETS):
            what = {0: "", 1: "a subset folder of ", 2: "a track folder of "}[len(inside)]
            raise StemcurateError(
                f"{out_dir}: is {what}the dataset {root}; separated stems there would be read as "
                "its tracks, write them elsewhere (--output)"
            )
    for folder in folders:
        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise StemcurateError(f"{folder}: exists and is a file, not a song folder; choose another --output")
        if folder.is_dir() and not (folder / MARKER).is_file() and any(folder.iterdir()):
            raise StemcurateError(
                f"{folder}: exists and holds files that pipelines separate did not write "
                "(a dataset's stems?); refusing to replace them, choose another --output"
            )


def apply_clip_mode(y: np.ndarray, mode: str) -> tuple[np.ndarray, str | None, float]:
    """``y`` ``(channels, samples)`` with samples beyond ±1 handled by ``mode`` (see the module
    docstring); returns ``(audio, what was done or None, peak before)``."""
    peak = float(np.abs(y).max()) if y.size else 0.0
    if peak <= 1.0 or mode == "none":
        return y, ("left above full scale" if peak > 1.0 else None), peak
    if mode == "rescale":
        return y / (1.01 * peak), "rescaled", peak
    return np.clip(y, -1.0, 1.0), "clamped", peak


def output_subtype(fmt: str, bits: str | None = None, clip_mode: str = "rescale") -> str | None:
    """The libsndfile subtype of the outputs (None for mp3), checked before any work.

    ``bits``: 16, 24 or float for wav (None: float), 16 or 24 for flac (None: 24; FLAC has no float
    samples); mp3 has no bit depth, so ``bits`` must be None. :class:`StemcurateError` naming the
    option otherwise, and for an unknown ``fmt`` or ``clip_mode``.
    """
    if clip_mode not in CLIP_MODES:
        raise StemcurateError(f"--clip-mode {clip_mode}: use one of {', '.join(CLIP_MODES)}")
    if fmt not in FORMATS:
        raise StemcurateError(f"--format {fmt}: use one of {', '.join(FORMATS)}")
    if fmt == "mp3":
        if bits is not None:
            raise StemcurateError(f"--bits {bits}: mp3 has no bit depth; leave --bits out (or use --format wav/flac)")
        return None
    bits = bits or ("24" if fmt == "flac" else "float")
    if bits not in BITS or (fmt == "flac" and bits == "float"):
        raise StemcurateError(
            f"--bits {bits}: use {'16 or 24 (FLAC has no float samples)' if fmt == 'flac' else '16, 24 or float'}"
        )
    return BITS[bits]


def separate_files(
    inputs: list[Path],
    out_dir: str | Path,
    separator: Separator,
    *,
    root: Path | None = None,
    fmt: str = "wav",
    bits: str | None = None,
    residual: bool = False,
    clip_mode: str = "rescale",
    on_file: Callable[[Path], None] | None = None,
) -> SeparationReport:
    """Separate each input with every model of ``separator`` and write the stems (see module docstring).
    ``bits``: see :func:`output_subtype`. :class:`StemcurateError` for inputs that are not a list of
    paths, a ``separator`` that is not a :class:`Separator` (or an object with its call, ``sample_rate``,
    ``channels`` and ``targets``), and outputs that would replace files."""
    if isinstance(inputs, (str, os.PathLike)) or not all(isinstance(p, (str, os.PathLike)) for p in inputs):
        raise StemcurateError(f"inputs {inputs!r}: give a list of audio file paths (find_inputs)")
    if not (callable(separator) and all(hasattr(separator, a) for a in ("sample_rate", "channels", "targets"))):
        raise StemcurateError(f"separator {separator!r}: give a bsrnn.separator.Separator (load_separator)")
    inputs = [Path(p) for p in inputs]
    subtype = output_subtype(fmt, bits, clip_mode)
    out_dir = output_path(out_dir)
    root = Path(root) if root is not None else (input_root(inputs[0]) if len(inputs) == 1 else Path("."))
    report = SeparationReport()
    named = output_folders(inputs, root, out_dir)
    folders = {src: f for src, (f, _) in named.items()}
    report.renamed = [(src, f, why) for src, (f, why) in named.items() if why]
    check_song_folders(folders.values(), out_dir)
    for src in inputs:
        if on_file:
            on_file(src)
        try:
            audio, sr = read_input(src)
        except StemcurateError as exc:
            report.failed.append((src, str(exc).split(": ", 1)[-1]))
            continue
        if audio.shape[1] == 0:
            report.failed.append((src, "no samples"))
            continue
        declared = audio_io.wav_declared_frames(src) if src.suffix.lower() == ".wav" else None
        if declared is not None and declared > audio.shape[1]:  # the scan's rule: a cut file is not read
            report.failed.append((src, f"truncated: header declares {declared} samples, file holds {audio.shape[1]}"))
            continue
        unusable = audio_problem(audio, sr)  # the scan's rules: rate, NaN/inf, impossible levels
        if unusable:
            report.failed.append((src, unusable[1]))
            continue
        if audio.shape[0] > separator.channels:  # conform's rule: the first channels (front L/R of a 5.1 file)
            report.channels.append((src, audio.shape[0]))
            audio = np.ascontiguousarray(to_channels(audio, separator.channels))
        try:
            stems = separator(audio, sr)
        except ValueError as exc:
            report.failed.append((src, str(exc)))
            continue
        if not all(bool(np.isfinite(y.numpy()).all()) for y in stems.values()):
            report.failed.append(
                (src, "the model gave NaN/inf samples (non-finite weights in a checkpoint?); nothing written")
            )
            continue
        folder = folders[src]
        held = marker_source(folder)
        if held is not None and held != input_id(src):  # a case-insensitive disk: Take_wav is Take_WAV
            report.failed.append((src, f"its output folder {folder} holds the stems of {held or 'another input'}"))
            continue
        mix = None
        if residual:
            import soxr

            mix = (
                audio
                if sr == separator.sample_rate
                else np.ascontiguousarray(soxr.resample(audio.T, sr, separator.sample_rate).T)
            )
        outputs = []
        for target, y in stems.items():
            y = y.numpy()
            outputs.append((folder / f"{target}.{fmt}", y))
            if residual:
                outputs.append((folder / f"no_{target}.{fmt}", mix[:, : y.shape[1]] - y))
        with filling_dir(folder, marker=(MARKER, f"separated by pipelines separate from {input_id(src)}\n")):
            for path, y in outputs:  # a song folder made here and not filled is removed whole
                y, action, peak = apply_clip_mode(y, clip_mode)
                if action:
                    report.clipped.append((path, action, peak))
                report.written.append(audio_io.write(path, y, separator.sample_rate, subtype=subtype))
        report.separated += 1
    return report
