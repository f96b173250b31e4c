"""``pipelines separate``: separate wav/mp3/flac files (or folders of them) into stems.

Outputs ``OUT/<song>/<target>.<format>`` at the model's rate (44.1 kHz), and ``no_<target>``
(input minus target) with ``residual``. Files that fail to decode, hold NaN or infinite samples or
impossible levels (:mod:`curate.data.conform`), are reported and skipped; a file with more channels
than the models take has its first ones separated (front left and right of a 5.1 file) and is
listed; every output is written atomically, so an interrupted run leaves no half-written file. Song folders are
named by :func:`output_folders` (an existing song's stems never move; a shared name gets the rest of
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

INPUT_EXTENSIONS = (".wav", ".flac", ".mp3", ".stem.mp4")
"""Files ``pipelines separate`` reads; of a ``.stem.mp4`` (MUSDB18), its mixture stream (stream 0)."""


def input_extension(path: Path) -> str | None:
    """The one of :data:`INPUT_EXTENSIONS` that ``path``'s name ends with (any case), else None."""
    name = path.name.lower()
    return next((e for e in sorted(INPUT_EXTENSIONS, key=len, reverse=True) if name.endswith(e)), None)


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
MARKER = ".stemcurate-separation"
"""The hidden file in each song folder that ``pipelines separate`` wrote (it names the input)."""


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


def find_inputs(path: str | Path, *, exclude: str | Path | None = None) -> list[Path]:
    """A wav/mp3/flac/stem.mp4 file, or the files of those types under a folder (recursive, through linked
    folders, sorted). Hidden files and folders (``.name``), those that file servers add (``#recycle``,
    ``@eaDir``) and the stems beside a track's ``mixture`` file (a MUSDB18-HQ track is one song) are left
    out, and so is the folder ``exclude`` (the output folder, when it lies inside the input folder: earlier
    results are not separated again)."""
    path = Path(path)
    if not path.exists():
        raise StemcurateError(f"{path}: no such file or folder")
    if path.is_file():
        if input_extension(path) is None:
            raise StemcurateError(f"{path}: unsupported file type (use {', '.join(INPUT_EXTENSIONS)})")
        return [path]
    from curate.data.names import ignored_name

    skip = Path(exclude).resolve() if exclude is not None else None

    def wanted(p: Path) -> bool:  # a broken link too: it is reported as a file that cannot be read, not left out unsaid
        if not (p.is_file() or p.is_symlink() and not p.exists()) or input_extension(p) is None:
            return False
        if any(ignored_name(part) for part in p.relative_to(path).parts):  # hidden, recycle bins, NAS indexes
            return False
        if _beside_a_mixture(p):  # a track folder (MUSDB18-HQ): its mixture is the song, its stems are not
            return False
        return skip is None or not p.resolve().is_relative_to(skip)

    files = sorted(p for p in _walk(path) if wanted(p))
    if not files:
        raise StemcurateError(f"{path}: no {', '.join(INPUT_EXTENSIONS)} files in this folder")
    return files


def _song_name(path: Path) -> str:
    """``path``'s name without the input extension it ends with."""
    ext = input_extension(path)
    return path.name[: -len(ext)] if ext and len(path.name) > len(ext) else path.stem


def _beside_a_mixture(path: Path) -> bool:
    """Whether ``path`` is a stem of a track folder: another file than the mixture, in a folder that holds a
    ``mixture`` file of an input type."""
    if _song_name(path).lower() == "mixture":
        return False
    try:
        return any(_song_name(f).lower() == "mixture" and input_extension(f) for f in path.parent.iterdir())
    except OSError:
        return False


def _neighbours(inputs: list[Path], root: Path) -> set[Path]:
    """The input files on disk that could take an input's song folder or one inside it, whether or not they
    are separated now: beside it, in the folder of its name, and beside its track folder (a mixture's)."""
    from curate.data.names import ignored_name

    def files(folder: Path, deep: bool) -> list[Path]:
        if not folder.is_dir() or not folder.is_relative_to(root):
            return []
        found = _walk(folder) if deep else folder.iterdir()
        return [
            f
            for f in found
            if (f.is_file() or f.is_symlink())
            and input_extension(f)
            and not any(ignored_name(x) for x in f.relative_to(folder).parts)
            and not _beside_a_mixture(f)
        ]

    out: set[Path] = set()
    for parent in {src.parent for src in inputs}:
        out.update(files(parent, False))
        if any(_song_name(src).lower() == "mixture" for src in inputs if src.parent == parent):
            out.update(files(parent.parent, False))
            out.update(f for f in files(parent, True) if f.parent != parent)
    for src in inputs:
        out.update(files(src.parent / _song_name(src), True))
    return out


def _walk(folder: Path):
    """Every path under ``folder``, through linked folders too (as ``curate scan`` reads linked track
    folders), each real folder once: a link that loops back is not followed again."""
    seen = set()
    for top, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        for name in dirs + names:
            yield Path(top) / name


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


def output_folder(src: Path, root: Path, out_dir: Path) -> Path:
    """``OUT/<song>`` for a file input, ``OUT/<relative folders>/<song>`` for a file found under a folder;
    a ``<track>/mixture.wav`` (MUSDB18-HQ layout) is the song ``<track>``."""
    rel = src.relative_to(root) if src.is_relative_to(root) and src != root else Path(src.name)
    ext = input_extension(rel)
    rel = rel.with_name(rel.name[: -len(ext)]) if ext and len(rel.name) > len(ext) else rel.with_suffix("")
    if rel.name == "mixture":
        rel = rel.parent if rel.parent != Path(".") else Path(src.parent.name)
    return out_dir / rel


def _suffixed(folder: Path, src: Path) -> Path:
    """``folder`` with the part of ``src``'s name that :func:`output_folder` dropped: its extension as
    written (``song_mp3``, ``Take_WAV``, ``song_stem_mp4``), or ``mixture`` and its extension for a track's
    mixture file (``track_mixture_wav``)."""
    n = len(input_extension(src) or src.suffix)
    ext = src.name[-n:] if n else ""  # as written: Take.WAV -> _WAV
    dropped = src.name[:-n] if n and src.name[:-n].lower() == "mixture" else ""
    tail = "_".join(p for p in (dropped, ext.lstrip(".").replace(".", "_")) if p)
    return folder.with_name(f"{folder.name}_{tail}")


def marker_source(folder: Path) -> str | None:
    """The input recorded in ``folder``'s :data:`MARKER` (its absolute path), None without one."""
    try:
        text = (folder / MARKER).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    head = "separated by pipelines separate from "
    return next((line[len(head) :] for line in text.splitlines() if line.startswith(head)), "")


def _earlier(out_dir: Path) -> dict[str, Path]:
    """The song folders under ``out_dir`` by the input their :data:`MARKER` names."""
    found: dict[str, Path] = {}
    if out_dir.is_dir():
        for marker in sorted(out_dir.rglob(MARKER)):
            source = marker_source(marker.parent)
            if source:
                found.setdefault(source, marker.parent)
    return found


def output_folders(inputs: list[Path], root: Path, out_dir: Path) -> dict[Path, tuple[Path, str | None]]:
    """Each input's song folder, and why it is not :func:`output_folder`'s (None when it is).

    An input whose stems are already in ``out_dir`` (a song folder whose :data:`MARKER` names it, wherever it
    is) keeps that folder, whatever else is separated and from whichever input folder: adding, removing or
    reordering inputs never moves an existing input's stems. Otherwise an input gets :func:`output_folder`,
    unless another input file has that name, or would have its folder inside this one (``sub.wav`` beside
    ``sub/vocals.wav``), whether it is separated now or not (the files beside an input count: the name is a
    function of the input's path and what lies beside it, not of the other inputs given), or the folder
    holds another input's stems: then the suffix
    from its own name (:func:`_suffixed`: ``song_wav``, ``song_mp3``). :class:`StemcurateError` naming both
    inputs, before any work, when even that folder is taken or one song's folder would lie in another's."""
    out_dir = Path(out_dir)
    bare = {src: output_folder(src, root, out_dir) for src in inputs}
    count: dict[Path, int] = {}
    others = [output_folder(n, root, out_dir) for n in _neighbours(inputs, root) - set(inputs)]
    for f in [*bare.values(), *others]:  # the files beside an input count whether separated now or not
        for g in (f, *f.parents):  # a folder that holds another input's folder is shared too
            count[g] = count.get(g, 0) + 1
            if g == out_dir:
                break
    earlier = _earlier(out_dir)
    folders: dict[Path, tuple[Path, str | None]] = {}
    for src in inputs:
        b, s = bare[src], _suffixed(bare[src], src)
        own = str(src.resolve())
        held = marker_source(b)
        if own in earlier:
            f = earlier[own]
            folders[src] = (f, None if f == b else "its stems are there from an earlier run")
        elif count[b] > 1:
            folders[src] = (s, "another input has the same name")
        elif held is not None:
            folders[src] = (s, f"{b} holds the stems of {held or 'another input'}")
        else:
            folders[src] = (b, None)
    chosen = {f: src for src, (f, _) in folders.items()}
    for src, (f, _) in folders.items():
        own, clash = str(src.resolve()), None
        for g in (f, *f.parents):  # its own folder, then the folders it would lie in
            if g == out_dir or out_dir not in g.parents:
                break
            held = marker_source(g)
            if chosen.get(g, src) != src or (held is not None and held != own):
                clash = chosen.get(g) if chosen.get(g, src) != src else held or "another input"
                break
        if clash is not None:
            raise StemcurateError(
                f"{src}: its output folder {f} is also that of {clash}, or lies in it; separate one of them into "
                "another --output"
            )
    return folders


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
    root = Path(root) if root is not None else (inputs[0].parent if len(inputs) == 1 else Path("."))
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
        if held is not None and held != str(src.resolve()):  # a case-insensitive disk: Take_wav is Take_WAV
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
        with filling_dir(folder, marker=(MARKER, f"separated by pipelines separate from {src.resolve()}\n")):
            for path, y in outputs:  # a song folder made here and not filled is removed whole
                y, action, peak = apply_clip_mode(y, clip_mode)
                if action:
                    report.clipped.append((path, action, peak))
                report.written.append(audio_io.write(path, y, separator.sample_rate, subtype=subtype))
        report.separated += 1
    return report
