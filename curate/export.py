"""``curate export``: what other trainers read, made from the fragments curation kept.

Formats (``OUT`` is a folder; ``export.json`` in it says what was done):

* ``musdb-hq``: ``OUT/<subset>/<track>/{<stem>,mixture}.wav`` (float32), read by MUSDB18-HQ loaders
  (``musdb.DB(root=OUT, is_wav=True)``, MSST dataset types 1/4/6, demucs, open-unmix). In every stem,
  each region of a rejected fragment that no kept fragment covers is silenced with short fades
  (:func:`curate.data.regions.region_mask`, the masking of ``pipelines train``); stems without manifest
  rows are copied as they are, and ``mixture.wav`` is the sum of the written stems (the original
  mixture, unchanged, where no stem was touched). ``drop_tracks``: only the tracks with no rejected
  fragment, unchanged.
* ``msst-csv``: ``OUT/<subset>.csv`` in MSST's dataset type 3 (``instrum,path``): the stem files whose
  kept fragments hold at least ``min_kept`` of their fragments' duration, as absolute paths (whole
  files: an MSST loader reads the whole file).
* ``txt``: the seed's ``OUT/{stem}_{subset}.txt`` fragment lists (``{track}\\t{start}\\t{end}``), the same
  files as ``curate scan --txt-dir`` (:func:`write_txt_lists`).
* ``relabel``: every track in the ``musdb-hq`` layout, unmasked, with the files that hold each other's
  label (the swaps ``curate repair`` trades: :func:`curate.repair.swapped_pairs`) written under their
  true names; ``export.json`` lists them.

A stem summed from several files (MoisesDB, MedleyDB: the manifest's ``parts``) is written as one file
by ``musdb-hq`` and ``relabel``, and listed file by file by ``msst-csv``. Datasets without track structure
(``stem-folders``, ``csv`` layouts) have no track folders to write: ``msst-csv`` and ``txt`` only.

The manifest is a scored one (kept: ``quality >= threshold``, as ``curate filter``) or the kept
manifest ``curate filter`` wrote (its rejected rows are read back from the scored manifest it names).
An ``OUT`` that holds anything but an earlier export is refused; an earlier finished export is replaced
only with ``overwrite``; an interrupted one with the same settings resumes (every finished track folder
or list is kept; each is written to a temporary name and renamed).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from curate.common.atomic import atomic_dir, filling_dir, make_dir, write_text
from curate.common.errors import StemcurateError, as_number, as_path
from curate.common.outputs import output_path
from curate.data import audio as audio_io
from curate.data.datasets import MIXTURE, SUBSETS, discover, is_stem_mp4
from curate.data.layouts import CSV, MUSDB, WITHOUT_SIBLINGS
from curate.data.regions import region_mask
from curate.data.schema import Manifest, read_manifest, row_parts
from curate.filter import read_scored

FORMATS = ("musdb-hq", "msst-csv", "txt", "relabel")
EXPORT_FILE = "export.json"
MARKER = ".stemcurate-export"
"""Written first into ``OUT``: the settings of an export under way (a rerun with the same ones resumes)."""


@dataclass(frozen=True)
class ExportConfig:
    """Settings of one export (see the module docstring)."""

    format: str = "musdb-hq"
    threshold: float | None = None
    """Kept: ``quality >= threshold`` (None: 0.7, or the threshold of the ``curate filter`` run that made a
    kept manifest; another one with a kept manifest is refused: export the scored manifest instead)."""
    fade_s: float = 0.05
    """Fade at each edge of a silenced region, seconds (as training's ``fade_s``)."""
    drop_tracks: bool = False
    min_kept: float = 0.9

    def __post_init__(self):
        if self.format not in FORMATS:
            raise StemcurateError(f"--format {self.format!r}: one of {', '.join(FORMATS)}")
        for name, low, high in (("threshold", 0.0, 1.0), ("min_kept", 0.0, 1.0), ("fade_s", 0.0, 1.0)):
            if getattr(self, name) is None:
                continue
            value = as_number(getattr(self, name), f"--{name.replace('_', '-')}")
            if not low <= value <= high:
                raise StemcurateError(f"--{name.replace('_', '-')} must be within {low:g}-{high:g}, got {value}")


@dataclass
class ExportResult:
    """What an export wrote: ``written`` paths (track folders or files), ``resumed`` ones kept from
    an interrupted run, ``skipped`` tracks with reasons, and the ``export.json`` path."""

    out: Path
    config: ExportConfig
    written: list[Path] = field(default_factory=list)
    resumed: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    record: Path | None = None
    relabelled: list[dict] = field(default_factory=list)
    """``relabel``: ``{subset, track, stem, written_as}`` of each file written under another name."""


def kept_and_rejected(
    manifest: str | Path, *, threshold: float | None = None
) -> tuple[Manifest, pd.DataFrame, pd.DataFrame, float]:
    """``(manifest, kept rows, rejected rows, threshold used)`` of a scored manifest (``threshold``,
    default 0.7), or of the kept manifest of ``curate filter`` (then the rejected rows come from the
    scored manifest it was made from, at filter's threshold). :class:`StemcurateError` for a manifest
    without scores, filter's rejected list, another threshold than filter's with its kept manifest, or a
    kept manifest whose source cannot be read."""
    m = read_scored(manifest, 0.7 if threshold is None else threshold)  # curate filter's rules for its input
    frame = m.frame
    made_by = m.meta.get("filter") or {}
    source = made_by.get("source")
    if source is None:
        threshold = 0.7 if threshold is None else threshold
        keep = frame["quality"].astype(float) >= threshold
        return m, frame[keep], frame[~keep], float(threshold)
    used = float(made_by.get("threshold", 0.7))
    if threshold is not None and threshold != used:
        raise StemcurateError(
            f"{manifest}: curate filter kept these fragments at threshold {used:g}; to export at {threshold:g}, "
            f"export the scored manifest ({source})"
        )
    if "reason" in frame.columns and frame["reason"].notna().any():
        raise StemcurateError(f"{manifest}: is curate filter's list of rejected fragments; export the kept one")
    candidates = [Path(source)] if Path(source).is_absolute() else [Path(source), Path(manifest).parent / source]
    src = next((p for p in candidates if p.is_file()), None)
    if src is None:
        raise StemcurateError(
            f"{manifest}: made by curate filter from {source}, which cannot be read; export the scored manifest"
        )
    full = read_manifest(src).frame
    key = ["track", "subset", "stem", "start", "end"]
    seen = full[key].merge(frame[key].drop_duplicates(), how="left", on=key, indicator=True)["_merge"] == "both"
    return m, frame, full[~seen.to_numpy()], used


def check_txt_names(names, where, *, lists: str = "the txt lists") -> None:
    """:class:`StemcurateError` naming ``where`` and the first track name with a tab or line break, which
    the txt lists (one fragment per line, tab-separated) cannot hold."""
    bad = next((n for n in names if any(c in str(n) for c in "\t\r\n")), None)
    if bad is not None:
        raise StemcurateError(
            f"{where}: track {bad!r} has a tab or line break in its name, which {lists} cannot hold "
            "(one fragment per line, tab-separated); rename it"
        )


def write_txt_lists(frame: pd.DataFrame, txt_dir: Path, subset: str, stems: list[str]) -> list[Path]:
    """Seed-compatible ``{stem}_{subset}.txt`` files: ``{track}\\t{start}\\t{end}`` per fragment."""
    out = []
    make_dir(txt_dir)
    for stem in stems:
        path = Path(txt_dir) / f"{stem}_{subset}.txt"
        sel = frame[frame["stem"] == stem]
        write_text(path, "".join(f"{r.track}\t{r.start}\t{r.end}\n" for r in sel.itertuples()))
        out.append(path)
    return out


def _export_entries(out: Path) -> list[Path] | None:
    """The entries of ``out`` that an export writes (its marker and record, subset folders of track
    folders, ``<subset>.csv``, ``<stem>_<subset>.txt``); None when it holds anything else."""
    entries = []
    for p in out.iterdir():
        ours = (
            p.name in (MARKER, EXPORT_FILE)
            or (p.is_dir() and not p.is_symlink() and p.name in SUBSETS)
            or (p.is_file() and p.suffix == ".csv" and p.stem in SUBSETS)
            or (p.is_file() and p.suffix == ".txt" and p.stem.rpartition("_")[2] in SUBSETS)
        )
        if not ours:
            return None
        entries.append(p)
    return entries


def _prepare(out: Path, settings: dict, overwrite: bool) -> bool:
    """Make ``out`` ready; True when it holds an interrupted export of the same settings (resume)."""
    if out.exists() and not out.is_dir():
        raise StemcurateError(f"{out}: exists and is not a folder")
    marker, record = out / MARKER, out / EXPORT_FILE
    if out.is_dir() and any(out.iterdir()):
        entries = _export_entries(out) if marker.is_file() else None
        if entries is None:
            raise StemcurateError(f"{out}: folder exists and holds something else than an export; choose another")
        try:
            before = json.loads(marker.read_text())
        except (OSError, ValueError):
            before = None
        if before == settings and not record.is_file():
            return True
        if not overwrite:
            what = "a finished export" if record.is_file() else "an export with other settings"
            raise StemcurateError(f"{out}: holds {what}; pass --overwrite to replace it")
        for p in entries:  # only what an export writes
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    with filling_dir(out, marker=(MARKER, json.dumps(settings, sort_keys=True))):
        pass
    return False


def export(
    manifest: str | Path,
    out: str | Path,
    *,
    config: ExportConfig = ExportConfig(),
    overwrite: bool = False,
    progress: Callable[[str, int], None] | None = None,
) -> ExportResult:
    """Export the kept fragments of ``manifest`` to the folder ``out`` in ``config.format`` (see the
    module docstring). :class:`StemcurateError` for bad input: the manifest, ``out`` holding something
    else, inside the dataset, or a finished export without ``overwrite``; ``msst-csv`` of ``.stem.mp4``
    sources (no file per stem: export ``musdb-hq`` first)."""
    manifest = as_path(manifest, "manifest")
    out = output_path(as_path(out, "out"))
    if not isinstance(config, ExportConfig):
        raise StemcurateError(f"config {config!r}: give an ExportConfig")
    m, kept, rejected, threshold = kept_and_rejected(manifest, threshold=config.threshold)
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
        if every["path"].astype(str).map(is_stem_mp4).any() and config.format == "msst-csv":
            raise StemcurateError(
                f"{manifest}: .stem.mp4 sources hold no file per stem for an MSST CSV; export --format musdb-hq first"
            )
        for rel in files:  # every file the scan read is still there
            if not (root / rel).is_file():
                raise StemcurateError(f"{root / rel}: missing (it was scanned); restore it or re-run curate scan")
    subsets = sorted(set(every["subset"]))
    if config.format == "txt":
        check_txt_names(sorted(set(every["track"])), manifest)
    lists = (
        {s: _csv_rows(root, every, kept, s, config.min_kept) for s in subsets} if config.format == "msst-csv" else {}
    )
    if lists and not any(lists.values()):
        raise StemcurateError(
            f"{manifest}: no stem file has {config.min_kept:.0%} of its fragment time kept (--min-kept); "
            "nothing to list"
        )
    config = replace(config, threshold=threshold)
    settings = {"manifest": str(Path(manifest).resolve()), **asdict(config)}
    created = not out.exists()
    resuming = _prepare(out, settings, overwrite)
    result = ExportResult(out, config)
    try:
        if config.format == "txt":
            for subset in subsets:
                sel = kept[kept["subset"] == subset]
                result.written += write_txt_lists(sel, out, subset, sorted(set(every["stem"])))
        elif config.format == "msst-csv":
            for subset, rows in lists.items():
                if not rows:
                    result.skipped.append((f"{subset}.csv", f"no stem file with {config.min_kept:.0%} kept"))
                    continue
                result.written.append(write_text(out / f"{subset}.csv", _csv_text(rows)))
        else:
            _write_musdb_hq(root, layout, every, kept, rejected, out, config, result, resuming, progress)
    except BaseException:
        if created and not result.written and not result.resumed:
            shutil.rmtree(out, ignore_errors=True)  # nothing done: leave no folder behind
        raise
    record = {
        **settings,
        "written": [str(p.relative_to(out)) for p in result.written],
        "resumed": [str(p.relative_to(out)) for p in result.resumed],
        "skipped": [{"track": t, "why": why} for t, why in result.skipped],
        "relabelled": result.relabelled,
        "kept_fragments": int(len(kept)),
        "rejected_fragments": int(len(rejected)),
    }
    result.record = write_text(out / EXPORT_FILE, json.dumps(record, indent=2) + "\n")
    return result


def _csv_rows(root: Path, every: pd.DataFrame, kept: pd.DataFrame, subset: str, min_kept: float) -> list[str]:
    """MSST type-3 rows (``instrum,path``) of the stem files of ``subset`` whose kept share of fragment
    time is ``min_kept`` or more; :class:`StemcurateError` for a path with a line break."""
    frame = every[every["subset"] == subset]
    dur = (frame["end"] - frame["start"]).groupby([frame["stem"], frame["path"]]).sum()
    k = kept[kept["subset"] == subset]
    kept_dur = (k["end"] - k["start"]).groupby([k["stem"], k["path"]]).sum().reindex(dur.index, fill_value=0)
    share = kept_dur / dur
    parts = {}  # a summed stem: each of its files under the stem's name
    if "parts" in frame.columns:
        parts = {p: q for p, q in zip(frame["path"], frame["parts"].map(row_parts)) if q is not None}
    rows = sorted(
        (str(stem), str((Path(root) / f).resolve()))
        for (stem, rel), s in share.items()
        if s >= min_kept
        for f in parts.get(rel, [rel])
    )
    for _, path in rows:
        if "\n" in path or "\r" in path:
            raise StemcurateError(f"{path!r}: a path with a line break cannot go in a CSV list")
    return rows


def _csv_text(rows: list[tuple[str, str]]) -> str:
    """An ``instrum,path`` CSV (RFC 4180 quoting: a path with a comma is quoted, as pandas reads it)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["instrum", "path"])
    writer.writerows(rows)
    return buf.getvalue()


def _write_musdb_hq(root, layout, every, kept, rejected, out, config, result, resuming, progress) -> None:
    """One folder per track of ``every`` (the manifest's rows, kept and rejected) under ``out/<subset>``:
    masked (``musdb-hq``) or with swapped files under their true names (``relabel``)."""
    from curate.repair import file_labels, swapped_pairs

    relabel = config.format == "relabel"
    moves: dict[tuple[str, str], dict[str, str]] = {}
    for subset, name, a, b in swapped_pairs(file_labels(every)) if relabel else ():
        moves.setdefault((subset, name), {}).update({a: b, b: a})
    tracks = {
        (t.subset, t.name): t for s in sorted(set(every["subset"])) for t in discover(root, subset=s, layout=layout)
    }
    todo = sorted(set(zip(every["subset"], every["track"])))
    for subset, name in todo:
        dst = out / subset / name
        if progress is not None:
            progress(name, len(todo))
        track = tracks.get((subset, name))
        if track is None:
            result.skipped.append((name, "not found in the dataset any more"))
            continue
        rej = rejected[(rejected["subset"] == subset) & (rejected["track"] == name)]
        if relabel:
            rej = rej.iloc[:0]  # a relabelled copy silences nothing
        if config.drop_tracks and len(rej):
            result.skipped.append((name, f"{len(rej)} rejected fragment(s)"))
            continue
        if resuming and dst.is_dir():
            result.resumed.append(dst)
            continue
        try:
            stems, sr = track.load_all()
        except StemcurateError as exc:  # a file no reader can use (curate.data.conform): the track is left out
            result.skipped.append((name, str(exc)))
            continue
        k = kept[(kept["subset"] == subset) & (kept["track"] == name)]
        fade = int(round(config.fade_s * sr))
        changed = False
        for stem, x in stems.items():
            r = rej[rej["stem"] == stem]
            if len(r) == 0:
                continue
            n = x.shape[1]
            cut = region_mask(r["start"].to_numpy(), r["end"].to_numpy(), n, fade)
            keep_s = k[k["stem"] == stem]
            keep = region_mask(keep_s["start"].to_numpy(), keep_s["end"].to_numpy(), n, fade)
            stems[stem] = x * np.maximum(1.0 - cut, keep)[None]
            changed = True
        move = moves.get((subset, name), {})
        for a, b in sorted(move.items()):
            result.relabelled.append(dict(subset=subset, track=name, stem=a, written_as=b))
        stems = {move.get(s, s): x for s, x in stems.items()}
        if changed or track.mixture is None:
            chans = max(x.shape[0] for x in stems.values())
            mix = sum(np.broadcast_to(x, (chans, x.shape[1])) for x in stems.values())
        else:
            try:
                mix, _ = track.load(MIXTURE)
            except StemcurateError as exc:  # as a stem no reader can use: the track is left out, and why
                result.skipped.append((name, str(exc)))
                continue
            mix = mix[:, : next(iter(stems.values())).shape[1]]
        with atomic_dir(dst) as work:
            for stem, x in stems.items():
                audio_io.write(work / f"{stem}.wav", x, sr, subtype="FLOAT")
            audio_io.write(work / f"{MIXTURE}.wav", mix, sr, subtype="FLOAT")
        result.written.append(dst)
