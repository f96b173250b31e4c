"""``curate export``: what other trainers read, made from the fragments curation kept.

Formats (``OUT`` is a folder; ``export.json`` in it says what was done):

* ``musdb-hq``: ``OUT/<split>/<track>/{<stem>,mixture}.wav`` (or ``.flac``), read by MUSDB18-HQ loaders
  (``musdb.DB(root=OUT, is_wav=True)``, MSST dataset types 1/4/6, demucs, open-unmix). In every stem,
  each region of a rejected fragment that no kept fragment covers is silenced with short fades; stems
  without manifest rows are copied as they are. ``drop_tracks``: only the tracks with no rejected
  fragment, unchanged. What every folder holds (every stem, one channel count, ``two_stems``, the
  mixture, the sample format) is :mod:`curate.exporttracks`.
* ``msst-csv``: ``OUT/<split>.csv`` in MSST's dataset type 3 (``instrum,path``): the stem files whose
  kept fragments hold at least ``min_kept`` of their fragments' duration, as absolute paths (whole
  files: an MSST loader reads the whole file). A ``.stem.mp4`` holds no file per stem: its listed stems
  are decoded once into ``OUT/<split>/<track>/`` and listed there.
* ``txt``: the seed's ``OUT/{stem}_{split}.txt`` fragment lists (``{track}\\t{start}\\t{end}``), the same
  files as ``curate scan --txt-dir`` (:func:`curate.exportlists.write_txt_lists`).
* ``relabel``: every track in the ``musdb-hq`` layout, unmasked, with the files that hold each other's
  label (the swaps ``curate repair`` trades: :func:`curate.repair.swapped_pairs`) written under their
  true names; ``export.json`` lists them.

Splits (:mod:`curate.exportsplits`): the main manifest's tracks go to their subset (``train``,
``test``), a validation manifest's to ``valid``, a test manifest's to ``test``; without a validation
manifest, ``valid_tracks`` moves training tracks to ``valid`` (by default MUSDB18's validation tracks
when they are there). ``export.json`` lists the tracks of each split.

A stem summed from several files (MoisesDB, MedleyDB: the manifest's ``parts``) is written as one file
by ``musdb-hq`` and ``relabel``, and listed file by file by ``msst-csv``. Datasets without track structure
(``stem-folders``, ``csv`` layouts) have no track folders to write: ``msst-csv`` and ``txt`` only.

The manifest is a scored one (kept: ``quality >= threshold``, as ``curate filter``) or the kept
manifest ``curate filter`` wrote (its rejected rows are read back from the scored manifest it names).
An ``OUT`` that holds anything but an earlier export is refused; an earlier finished export is replaced
only with ``overwrite`` (nothing but what an export writes is deleted; the trainers' caches of the
earlier export are named in ``ExportResult.warnings``); an interrupted one with the same settings
resumes (every finished track folder or list is kept; each is written to a temporary name and renamed).
``export.json`` holds ``content_digest``, a SHA-256 of every written file's path and content (for audio
its samples), by which a trainer's cached index of an earlier export can be told stale.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from curate.common.atomic import write_text
from curate.common.errors import StemcurateError, as_number, as_path
from curate.common.outputs import output_path
from curate.data.datasets import MIXTURE, is_stem_mp4
from curate.data.layouts import CSV, MUSDB, WITHOUT_SIBLINGS
from curate.exportfolder import EXPORT_FILE, REPLACED, STALE, content_digest, file_digest, prepare
from curate.exportlists import check_txt_names, csv_rows, csv_text, write_txt_lists
from curate.exportsplits import VALID_LAYOUTS, parse_valid_tracks, set_splits
from curate.exporttracks import (
    AUDIO_FORMATS,
    BITS,
    OTHER,
    TrackFormat,
    decode_listed,
    export_channels,
    find_tracks,
    write_tracks,
)
from curate.filter import kept_and_rejected

FORMATS = ("musdb-hq", "msst-csv", "txt", "relabel")


@dataclass(frozen=True)
class ExportConfig:
    """Settings of one export (see the module docstring, :mod:`curate.exporttracks` and
    :mod:`curate.exportsplits`)."""

    format: str = "musdb-hq"
    threshold: float | None = None
    """Kept: ``quality >= threshold`` (None: 0.7, or the threshold of the ``curate filter`` run that made a
    kept manifest; another one with a kept manifest is refused: export the scored manifest instead)."""
    fade_s: float = 0.05
    """Fade at each edge of a silenced region, seconds (as training's ``fade_s``)."""
    drop_tracks: bool = False
    min_kept: float = 0.9
    two_stems: str | None = None
    """Write only this stem and ``other``, the sum of the rest (``musdb-hq``, ``relabel``)."""
    mixture: bool = True
    """Write ``mixture.<ext>`` in every track folder."""
    audio_format: str = "wav"
    bits: str = "source"
    """``16``, ``24``, ``float`` (WAV only) or ``source``: the deepest among each track's files."""
    valid_tracks: int | tuple[str, ...] | None = None
    """Training tracks moved to ``valid``: a count, names, or None (MUSDB18's validation tracks)."""
    valid_layout: str = "folder"
    seed: int = 0
    """Seed of the draw of ``valid_tracks`` tracks."""

    def __post_init__(self):
        if self.format not in FORMATS:
            raise StemcurateError(f"--format {self.format!r}: one of {', '.join(FORMATS)}")
        for name, low, high in (("threshold", 0.0, 1.0), ("min_kept", 0.0, 1.0), ("fade_s", 0.0, 1.0)):
            if getattr(self, name) is None:
                continue
            value = as_number(getattr(self, name), f"--{name.replace('_', '-')}")
            if not low <= value <= high:
                raise StemcurateError(f"--{name.replace('_', '-')} must be within {low:g}-{high:g}, got {value}")
        for name, allowed in (("audio_format", AUDIO_FORMATS), ("bits", BITS), ("valid_layout", VALID_LAYOUTS)):
            if str(getattr(self, name)) not in allowed:
                raise StemcurateError(
                    f"--{name.replace('_', '-')} {getattr(self, name)!r}: one of {', '.join(allowed)}"
                )
        object.__setattr__(self, "bits", str(self.bits))
        if self.audio_format == "flac" and self.bits == "float":
            raise StemcurateError("--bits float: FLAC holds 16- or 24-bit samples; use --audio-format wav")
        if self.two_stems is not None and self.two_stems in (OTHER, MIXTURE):
            raise StemcurateError(
                f"--two-stems {self.two_stems}: the rest of the stems is written as '{OTHER}'; name another stem"
            )
        object.__setattr__(self, "valid_tracks", parse_valid_tracks(self.valid_tracks))
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise StemcurateError(f"--seed {self.seed!r}: give a whole number")


@dataclass
class ExportResult:
    """What an export wrote: ``written`` paths (track folders or files), ``resumed`` ones kept from
    an interrupted run, ``skipped`` tracks with reasons, ``splits`` (the tracks of each split),
    ``warnings`` (one line each) and the ``export.json`` path."""

    out: Path
    config: ExportConfig
    written: list[Path] = field(default_factory=list)
    resumed: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    record: Path | None = None
    relabelled: list[dict] = field(default_factory=list)
    """``relabel``: ``{subset, track, stem, written_as}`` of each file written under another name."""
    splits: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    gains: list[dict] = field(default_factory=list)
    """``{split, track, gain_db}`` of each track scaled down to fit a PCM format."""


@dataclass
class _Source:
    """One manifest's rows (kept and rejected) with its dataset, and the split of each track."""

    manifest: Path
    root: Path
    layout: str
    kept: pd.DataFrame
    rejected: pd.DataFrame
    every: pd.DataFrame
    labels: dict
    """``{(subset, track): {file's stem: label the review gave it}}``."""

    def relabelled(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` (rows of this manifest) with each row under the label the review gave its file."""
        if not self.labels:
            return frame
        keys = zip(frame["subset"], frame["track"], frame["stem"])
        return frame.assign(stem=[self.labels.get((sub, t), {}).get(st, st) for sub, t, st in keys])


def _source(manifest: Path, out: Path, config: ExportConfig, threshold: float | None) -> tuple[_Source, float]:
    """Read one manifest for export; :class:`StemcurateError` for what makes it unexportable to ``out``."""
    m, kept, rejected, threshold, labels = kept_and_rejected(manifest, threshold=threshold)
    root, where = Path(m.root).resolve(), out.resolve()
    every = pd.concat([kept, rejected], ignore_index=True)  # a kept manifest holds only the kept rows
    layout = m.meta.get("layout") or MUSDB
    # the dataset's folders: its root, or for a CSV list (files anywhere) the folders of its files
    files = m.audio_files(every).index
    folders = {(root / p).parent.resolve() for p in files} if layout == CSV else {root}
    for folder in sorted(folders):
        if where == folder or folder in where.parents:
            raise StemcurateError(f"{out}: the export must not be written into the dataset it is made from ({folder})")
    for inside, what in [*((f, "the dataset") for f in sorted(folders)), (Path(manifest).resolve(), "the manifest")]:
        if where in inside.parents:
            raise StemcurateError(f"{out}: holds {what} ({inside}); write the export elsewhere")
    if config.format in ("musdb-hq", "relabel") and layout in WITHOUT_SIBLINGS:
        raise StemcurateError(
            f"{manifest}: a {layout} dataset has no tracks to write as folders; export --format msst-csv or txt"
        )
    if config.format != "txt":
        for rel in files:  # every file the scan read is still there
            if not (root / rel).is_file():
                raise StemcurateError(f"{root / rel}: missing (it was scanned); restore it or re-run curate scan")
    return _Source(Path(manifest), root, layout, kept, rejected, every, labels), threshold


def export(
    manifest: str | Path,
    out: str | Path,
    *,
    valid: str | Path | None = None,
    test: str | Path | None = None,
    config: ExportConfig = ExportConfig(),
    overwrite: bool = False,
    progress: Callable[[str, int], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export the kept fragments of ``manifest`` (and of the ``valid`` and ``test`` manifests, whose
    tracks go to those splits) to the folder ``out`` in ``config.format`` (see the module docstring).
    :class:`StemcurateError` for bad input: a manifest, ``out`` holding something else, inside a
    dataset, or a finished export without ``overwrite``; a track in two splits; nothing to write.
    ``on_warning(text)`` is called with each warning as it arises (they are also in the result)."""
    manifest = as_path(manifest, "manifest")
    out = output_path(as_path(out, "out"))
    if not isinstance(config, ExportConfig):
        raise StemcurateError(f"config {config!r}: give an ExportConfig")
    src, threshold = _source(manifest, out, config, config.threshold)
    sources = {"main": src}
    for role, path in (("valid", valid), ("test", test)):
        if path is not None:
            sources[role], _ = _source(as_path(path, f"--{role}"), out, config, threshold)
    splits, how = set_splits(sources, config, valid)
    every = pd.concat([s.every for s in sources.values()], ignore_index=True)
    if config.format == "txt":
        check_txt_names(sorted(set(every["track"])), manifest)
    names = sorted(splits)
    lists = {}
    if config.format == "msst-csv":
        lists = {
            sp: sorted(
                r
                for s in sources.values()
                for r in csv_rows(s.root, s.relabelled(s.every), s.relabelled(s.kept), sp, config.min_kept)
            )
            for sp in names
        }
        if not any(lists.values()):
            raise StemcurateError(
                f"{manifest}: no stem file has {config.min_kept:.0%} of its fragment time kept (--min-kept); "
                "nothing to list"
            )
    tracks = {}
    review_stems = {v for s in sources.values() for labels in s.labels.values() for v in labels.values()}
    if config.format in ("musdb-hq", "relabel"):
        tracks = {role: find_tracks(s.root, s.layout, s.every["subset"]) for role, s in sources.items()}
        stems = tuple(sorted({n for found in tracks.values() for t in found.values() for n in t.stems} | review_stems))
        if config.two_stems is not None and config.two_stems not in stems:
            raise StemcurateError(f"--two-stems {config.two_stems}: no such stem (the tracks have {', '.join(stems)})")
        if config.drop_tracks and all(
            len(s.rejected) and set(s.every["track"]) <= set(s.rejected["track"]) for s in sources.values()
        ):
            raise StemcurateError(
                f"{manifest}: every track has a rejected fragment; --drop-tracks leaves nothing to export"
            )
    config = replace(config, threshold=threshold)
    given = {"manifest": manifest, "valid": valid, "test": test}
    settings = {k: str(Path(p).resolve()) for k, p in given.items() if p is not None}
    settings |= {f"{k}_sha256": file_digest(Path(p)) for k, p in given.items() if p is not None}
    settings = json.loads(json.dumps({**settings, **asdict(config)}))  # as the marker reads back
    created = not out.exists()
    resuming, replaced = prepare(out, settings, overwrite)
    result = ExportResult(out, config, splits=splits)

    def warn(text: str) -> None:
        result.warnings.append(text)
        if on_warning is not None:
            on_warning(text)

    if replaced:
        warn(STALE.format(out=out))
    try:
        if config.format == "txt":
            for sp in names:
                sel = pd.concat([s.relabelled(s.kept[s.kept["split"] == sp]) for s in sources.values()])
                result.written += write_txt_lists(sel, out, sp, sorted({*every["stem"], *review_stems}))
        elif config.format == "msst-csv":
            fmt = TrackFormat((), None, False, config.audio_format, config.bits)
            mp4 = {
                str(f.resolve()): t
                for s in sources.values()
                if s.every["path"].astype(str).map(is_stem_mp4).any()
                for t in find_tracks(s.root, s.layout, s.every["subset"]).values()
                for f in {x.path for x in t.stems.values()}
            }
            for sp, rows in lists.items():
                rows = decode_listed(rows, mp4, out, sp, fmt, resuming=resuming, into=result) if mp4 else rows
                if not rows:
                    result.skipped.append((f"{sp}.csv", f"no stem file with {config.min_kept:.0%} kept"))
                    continue
                result.written.append(write_text(out / f"{sp}.csv", csv_text(rows)))
        else:
            channels = export_channels(t for found in tracks.values() for t in found.values())
            fmt = TrackFormat(stems, config.two_stems, config.mixture, config.audio_format, config.bits, channels)
            for role, s in sources.items():
                folder = {
                    (sub, t): ("train" if sp == "valid" and config.valid_layout == "musdb" else sp)
                    for sub, t, sp in zip(s.every["subset"], s.every["track"], s.every["split"])
                }
                write_tracks(
                    result,
                    tracks[role],
                    s.every,
                    s.kept,
                    s.rejected,
                    {k: out / f / k[1] for k, f in folder.items()},
                    fmt=fmt,
                    relabel=config.format == "relabel",
                    drop_tracks=config.drop_tracks,
                    fade_s=config.fade_s,
                    resuming=resuming,
                    moves=_moves(s, config.format == "relabel"),
                    progress=progress,
                )
            result.splits = _written_splits(result, splits, warn)
    except BaseException:
        if created and not result.written and not result.resumed:
            shutil.rmtree(out, ignore_errors=True)  # nothing done: leave no folder behind
        raise
    if "valid" not in result.splits and "train" in result.splits:
        warn(
            "no validation split (MSST, demucs and open-unmix validate on one): "
            "pass --valid-tracks N or --valid MANIFEST"
        )
    record = {
        **settings,
        "splits": result.splits,
        "valid_chosen": how,
        "written": [str(p.relative_to(out)) for p in result.written],
        "resumed": [str(p.relative_to(out)) for p in result.resumed],
        "skipped": [{"track": t, "why": why} for t, why in result.skipped],
        "relabelled": result.relabelled,
        "scaled_down": result.gains,
        "kept_fragments": int(sum(len(s.kept) for s in sources.values())),
        "rejected_fragments": int(sum(len(s.rejected) for s in sources.values())),
        "content_digest": content_digest(out),
    }
    result.record = write_text(out / EXPORT_FILE, json.dumps(record, indent=2) + "\n")
    (out / REPLACED).unlink(missing_ok=True)
    return result


def _written_splits(result: ExportResult, planned: dict[str, list[str]], warn) -> dict[str, list[str]]:
    """The tracks of each split that were written (or kept from an interrupted run), a warning for each
    split that lost tracks; :class:`StemcurateError` when no track was written at all."""
    done = {p.name for p in (*result.written, *result.resumed)}
    if not done:
        why = f" (the first, {result.skipped[0][0]}: {result.skipped[0][1]})" if result.skipped else ""
        raise StemcurateError(f"{result.out}: no track could be written{why}")
    out = {}
    for split, names in planned.items():
        kept = [t for t in names if t in done]
        if len(kept) < len(names):
            gone = next(t for t in names if t not in done)
            warn(f"{split}: {len(kept)} of {len(names)} tracks written ({gone} and any other left out: see above)")
        if kept:
            out[split] = kept
    return out


def _moves(src: _Source, swaps: bool) -> dict:
    """``{(subset, track): {file's stem: label it is written under}}``: the review's relabels, and with
    ``swaps`` (``relabel``) the swapped files ``curate repair`` trades, where the review named none."""
    from curate.repair import swap_moves

    out = swap_moves(src.every) if swaps else {}
    for key, labels in src.labels.items():
        out[key] = dict(labels)  # the review's word over the scan's
    return out
