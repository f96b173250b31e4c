"""``pipelines separate``: separate wav/mp3/flac files (or folders of them) into stems.

Outputs ``OUT/<song>/<target>.<format>`` at the model's rate (44.1 kHz), and ``no_<target>``
(input minus target) with ``residual``. Files that fail to decode, or hold NaN or infinite samples,
are reported and skipped; every output is written atomically, so an interrupted run leaves no
half-written file. Two inputs that would share an output folder (``song.wav`` and ``song.mp3``)
get their extension in the folder name (``OUT/song_wav``, ``OUT/song_mp3``), and the report lists
them. Samples beyond full scale are handled by ``clip_mode`` (as demucs does): ``rescale`` (the
file is scaled so that its peak is just below full scale), ``clamp`` (cut at ±1) or ``none`` (float
files keep them; integer formats then saturate), and the report says which files were touched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from bsrnn.model import CheckpointError, saved_model_files
from bsrnn.separator import Separator
from curate import audio as audio_io
from curate.errors import StemcurateError

INPUT_EXTENSIONS = (".wav", ".flac", ".mp3")
FORMATS = ("wav", "flac", "mp3")
BITS = {"16": "PCM_16", "24": "PCM_24", "float": "FLOAT"}
CLIP_MODES = ("rescale", "clamp", "none")


@dataclass
class SeparationReport:
    """What :func:`separate_files` wrote and which inputs it skipped (with the reason)."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    renamed: list[tuple[Path, Path]] = field(default_factory=list)
    """Inputs whose output folder carries their extension, since another input shares their name."""
    clipped: list[tuple[Path, str, float]] = field(default_factory=list)
    """Outputs whose peak was above full scale: (file, what was done, peak before)."""
    separated: int = 0


def find_inputs(path: str | Path) -> list[Path]:
    """A wav/mp3/flac file, or the files of those types under a folder (recursive, sorted)."""
    path = Path(path)
    if not path.exists():
        raise StemcurateError(f"{path}: no such file or folder")
    if path.is_file():
        if path.suffix.lower() not in INPUT_EXTENSIONS:
            raise StemcurateError(f"{path}: unsupported file type (use {', '.join(INPUT_EXTENSIONS)})")
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in INPUT_EXTENSIONS and not p.name.startswith("."))
    if not files:
        raise StemcurateError(f"{path}: no {', '.join(INPUT_EXTENSIONS)} files in this folder")
    return files


def resolve_checkpoints(targets: list[str] | None, checkpoints: list[Path] | None, *, models_dir: Path = Path("saved_models")) -> list[Path]:
    """Checkpoint files for the asked targets: ``-c`` files (or folders holding ``<t>/<t>.ckpt``), else
    ``saved_models/<target>/<target>.ckpt``. Nothing is loaded here (see :func:`load_separator`)."""
    if checkpoints:
        files = []
        for c in checkpoints:
            if c.is_dir():
                files += [f for f in saved_model_files(c) if not targets or f.stem in targets]
            else:
                files.append(c)
        if not files:
            raise StemcurateError(f"{', '.join(map(str, checkpoints))}: no <target>/<target>.ckpt checkpoints found")
    else:
        if not targets:
            files = saved_model_files(models_dir)
            if not files:
                raise StemcurateError(f"{models_dir}: no trained models; train one with `pipelines train` or pass -c CKPT")
        else:
            files = [models_dir / t / f"{t}.ckpt" for t in targets]
    for f in files:
        if not f.is_file():
            raise StemcurateError(f"{f}: checkpoint not found")
    return files


def load_separator(files: list[Path], targets: list[str] | None, *, device: str = "cpu", **options) -> Separator:
    """Load every checkpoint once; a bad file, or a checkpoint of another target than asked, is an error naming it."""
    try:
        sep = Separator.from_checkpoint(files, device=device, **options)
    except (CheckpointError, ValueError) as exc:
        raise StemcurateError(str(exc)) from None
    if targets:
        for f, got in zip(files, sep.targets):  # from_checkpoint keeps the order of the files
            if got not in targets:
                raise StemcurateError(f"{f}: a '{got}' model, asked for {', '.join(targets)}")
    return sep


def output_folder(src: Path, root: Path, out_dir: Path) -> Path:
    """``OUT/<song>`` for a file input, ``OUT/<relative folders>/<song>`` for a file found under a folder;
    a ``<track>/mixture.wav`` (MUSDB18-HQ layout) is the song ``<track>``."""
    rel = src.relative_to(root).with_suffix("") if src.is_relative_to(root) and src != root else Path(src.stem)
    if rel.name == "mixture":
        rel = rel.parent if rel.parent != Path(".") else Path(src.parent.name)
    return out_dir / rel


def output_folders(inputs: list[Path], root: Path, out_dir: Path) -> dict[Path, Path]:
    """:func:`output_folder` of every input; inputs that would share a folder get their extension in
    it (``song_wav``, ``song_mp3``), so that no output overwrites another."""
    folders = {src: output_folder(src, root, out_dir) for src in inputs}
    seen: dict[Path, list[Path]] = {}
    for src, f in folders.items():
        seen.setdefault(f, []).append(src)
    for f, srcs in seen.items():
        if len(srcs) > 1:
            for src in srcs:
                folders[src] = f.with_name(f"{f.name}_{src.suffix.lstrip('.').lower()}")
    if len(set(folders.values())) < len(folders):  # same name and extension in different case
        for i, src in enumerate(inputs):
            folders[src] = folders[src].with_name(f"{folders[src].name}_{i + 1}")
    return folders


def apply_clip_mode(y: np.ndarray, mode: str) -> tuple[np.ndarray, str | None, float]:
    """``y`` ``(channels, samples)`` with samples beyond ±1 handled by ``mode`` (see the module
    docstring); returns ``(audio, what was done or None, peak before)``."""
    peak = float(np.abs(y).max()) if y.size else 0.0
    if peak <= 1.0 or mode == "none":
        return y, ("left above full scale" if peak > 1.0 else None), peak
    if mode == "rescale":
        return y / (1.01 * peak), "rescaled", peak
    return np.clip(y, -1.0, 1.0), "clamped", peak


def separate_files(
    inputs: list[Path], out_dir: str | Path, separator: Separator, *, root: Path | None = None, fmt: str = "wav",
    bits: str = "float", residual: bool = False, clip_mode: str = "rescale", on_file: Callable[[Path], None] | None = None,
) -> SeparationReport:
    """Separate each input with every model of ``separator`` and write the stems (see module docstring)."""
    if clip_mode not in CLIP_MODES:
        raise StemcurateError(f"--clip-mode {clip_mode}: use one of {', '.join(CLIP_MODES)}")
    if fmt not in FORMATS:
        raise StemcurateError(f"--format {fmt}: use one of {', '.join(FORMATS)}")
    if bits not in BITS:
        raise StemcurateError(f"--bits {bits}: use 16, 24 or float")
    if fmt == "flac" and bits == "float":
        bits = "24"  # FLAC has no float samples
    subtype = None if fmt == "mp3" else BITS[bits]
    out_dir = Path(out_dir)
    root = Path(root) if root is not None else (inputs[0].parent if len(inputs) == 1 else Path("."))
    report = SeparationReport()
    folders = output_folders(inputs, root, out_dir)
    report.renamed = [(src, f) for src, f in folders.items() if f != output_folder(src, root, out_dir)]
    for src in inputs:
        if on_file:
            on_file(src)
        try:
            data, sr = sf.read(str(src), dtype="float32", always_2d=True)
        except Exception as exc:  # libsndfile raises several types for broken files
            report.failed.append((src, f"cannot decode ({str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__})"))
            continue
        if data.shape[0] == 0:
            report.failed.append((src, "no samples"))
            continue
        bad = int(data.size - np.isfinite(data).sum())
        if bad:
            report.failed.append((src, f"{bad} NaN/inf samples"))
            continue
        audio = np.ascontiguousarray(data.T)
        try:
            stems = separator(audio, sr)
        except ValueError as exc:
            report.failed.append((src, str(exc)))
            continue
        if not all(bool(np.isfinite(y.numpy()).all()) for y in stems.values()):
            report.failed.append((src, "the model gave NaN/inf samples (non-finite weights in a checkpoint?); nothing written"))
            continue
        folder = folders[src]
        mix = None
        if residual:
            import soxr

            mix = audio if sr == separator.sample_rate else np.ascontiguousarray(soxr.resample(audio.T, sr, separator.sample_rate).T)
        outputs = []
        for target, y in stems.items():
            y = y.numpy()
            outputs.append((folder / f"{target}.{fmt}", y))
            if residual:
                outputs.append((folder / f"no_{target}.{fmt}", mix[:, : y.shape[1]] - y))
        for path, y in outputs:
            y, action, peak = apply_clip_mode(y, clip_mode)
            if action:
                report.clipped.append((path, action, peak))
            report.written.append(audio_io.write(path, y, separator.sample_rate, subtype=subtype))
        report.separated += 1
    return report
