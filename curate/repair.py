"""``curate repair``: mend what curation can prove instead of throwing it away.

Rejecting a corrupted stem loses its track for that target. Two corruptions leave the right audio
in the dataset, and the structure of a track says how to get it back:

* **Swapped files.** Within a track each label should appear once. When two files of a track each
  hold the other's label (the scan's ``predicted_stem``, by duration over the file's fragments,
  with the file's mean ``label_score`` below ``swap_max_label_score``), the two files trade labels.
  Only such 2-cycles are mended: a file that looks like a label whose own file looks right (a
  replaced stem, or a classifier error) is left for the filter to reject, and longer cycles are
  left too (a 3-cycle is as often a swap plus a replacement as a real rotation).
* **Leaks.** A leak is a filtered, delayed copy of another file of the same track. For every file,
  the leak fraction of every sibling over the whole file and over ``window_s`` windows comes from
  :func:`curate.scoring.bleed.track_bleed` (the scan's leak model, with its evidence gate); where the
  strongest reaches ``leak_min_db``, a least-squares FIR
  filter (``taps`` taps from ``-pre`` samples, shared by the channels) predicts the file from that
  sibling, and the prediction is subtracted, strongest leak first, when it removes no more than the
  leak model measured (plus ``max_excess_db``). A long filter can also predict a file's own content
  from a sibling that plays the same notes, or that holds a copy of this file when leaks go both
  ways (then the whole-file measure is the reference); such a leak is kept (``leak kept``) for the
  filter to judge.

The repaired subsets are written as float32 WAV in the MUSDB18-HQ layout (``mixture`` the sum of
the repaired stems); other subsets are copied. A track with a file no reader can use (it does not
decode, holds NaN/inf or impossible levels, or does not line up: :mod:`curate.data.conform`) is copied
unchanged and logged ``not repaired`` with the file and the problem; the rescan reports it again.
Files are written with the channels every reader uses (:mod:`curate.data.conform`): a mono file among
stereo ones as dual mono, a file with more than two channels as its first two. ``DST/repairs.parquet`` lists every
action (see
:data:`curate.data.schema.REPAIRS_SCHEMA`). Rescan the result (``curate scan DST``) and filter it: what
could not be mended is still rejected there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.linalg import solve_toeplitz
from scipy.signal import fftconvolve

from curate.common.atomic import atomic_dir
from curate.common.errors import StemcurateError, check_finite_fields
from curate.common.outputs import output_path
from curate.data import audio as audio_io
from curate.data.conform import to_channels
from curate.data.datasets import MIXTURE, copy_subsets, copy_track, discover, file_changed
from curate.data.layouts import MUSDB, WITHOUT_SIBLINGS
from curate.data.schema import REPAIRS_FILE, Manifest, write_repairs
from curate.decisions import check_relabels, latest, review_labels
from curate.scoring.bleed import BleedConfig, track_bleed
from curate.scoring.spectra import stft


@dataclass(frozen=True)
class RepairConfig:
    """When to trade labels and subtract leaks."""

    relabel: bool = True
    """Trade the labels of swapped files (``curate repair --no-relabel``: leaks only)."""
    swap_max_label_score: float = 0.5
    """A file's label is doubted when the mean ``label_score`` of its fragments is below this."""
    swap_min_share: float = 0.6
    """The share of a file's scored duration that must agree on its ``predicted_stem``."""
    leak_min_db: float = -30.0
    """Leaks from this level (whole file, dB re the file's energy) up are subtracted."""
    taps: int = 1024
    """FIR length of the leak path in samples (23 ms at 44.1 kHz: delay plus the filter's tail)."""
    window_s: float = 4.0
    """Leaks are measured over the whole file and over windows of this length (the strongest counts:
    a leak of a sparse part shows in the windows where it plays)."""
    max_excess_db: float = 1.5
    """A subtraction that would remove more than the measured leak plus this is not made."""
    pre: int = 8
    """Taps before zero delay (a zero-delay copy). Kept short: a leak the other way round (the
    sibling holding a copy of this file) sits at negative lags, and a filter reaching there would
    predict this file from that copy and subtract its own content."""

    def __post_init__(self):
        check_finite_fields(self, "repair settings")


def file_labels(frame: pd.DataFrame) -> pd.DataFrame:
    """Per stem file of a scored manifest: ``track, subset, stem, predicted, share, label_score``
    (duration-weighted)."""
    rows = []
    for (subset, track, stem), g in frame.groupby(["subset", "track", "stem"], sort=True):
        dur = (g["end"] - g["start"]).to_numpy(np.float64)
        pred = g["predicted_stem"].fillna(stem).to_numpy()
        ls = g["label_score"].astype("float64").to_numpy()
        by = pd.Series(dur).groupby(pred).sum()
        top = str(by.idxmax())
        ok = np.isfinite(ls)
        score = float(np.average(ls[ok], weights=dur[ok])) if ok.any() and dur[ok].sum() > 0 else 1.0
        rows.append(
            dict(
                track=track,
                subset=subset,
                stem=stem,
                predicted=top,
                share=float(by.max() / max(dur.sum(), 1e-9)),
                label_score=score,
            )
        )
    return pd.DataFrame(rows, columns=["track", "subset", "stem", "predicted", "share", "label_score"])


def swapped_pairs(files: pd.DataFrame, *, config: RepairConfig = RepairConfig()) -> list[tuple[str, str, str, str]]:
    """``(subset, track, stem_a, stem_b)`` for every pair of files of a track that hold each other's label."""
    doubted = files[
        (files["predicted"] != files["stem"])
        & (files["share"] >= config.swap_min_share)
        & (files["label_score"] < config.swap_max_label_score)
    ]
    out = []
    for (subset, track), g in doubted.groupby(["subset", "track"], sort=True):
        pred = dict(zip(g["stem"], g["predicted"]))
        for a, b in pred.items():
            if a < b and pred.get(b) == a:
                out.append((subset, track, a, b))
    return out


def fit_leak(receiver: np.ndarray, source: np.ndarray, *, taps: int = 1024, pre: int = 8) -> np.ndarray:
    """The part of ``receiver`` that a FIR filter of ``source`` predicts, ``(channels, samples)`` float64.

    Least squares over lags ``[-pre, taps - pre)`` with one filter for all channels (normal
    equations from the full-length auto- and cross-correlations; a tiny ridge keeps them posed).
    """
    y = receiver.astype(np.float64)
    x = source.astype(np.float64)
    if x.shape[0] != y.shape[0]:
        x = np.repeat(x.mean(0, keepdims=True), y.shape[0], axis=0)
    n = y.shape[1]
    taps = max(1, min(taps, n))  # a file shorter than the filter: as many taps as samples
    pre = min(pre, taps - 1)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    fx, fy = np.fft.rfft(x, size), np.fft.rfft(y, size)
    r_xx = np.fft.irfft((fx * np.conj(fx)).sum(0), size)
    r_yx = np.fft.irfft((fy * np.conj(fx)).sum(0), size)  # r_yx[k] = sum_n y[n] x[n - k]
    if r_xx[0] <= 0:
        return np.zeros_like(y)
    col = r_xx[:taps].copy()
    col[0] *= 1.0 + 1e-6
    lags = np.arange(-pre, taps - pre)
    h = solve_toeplitz(col, r_yx[lags % size])
    return np.stack([fftconvolve(c, h)[pre : pre + n] for c in x])  # sum_i h_i x[n - (i - pre)]


def repair_track(
    stems: dict[str, np.ndarray],
    sample_rate: int,
    *,
    config: RepairConfig = RepairConfig(),
    bleed: BleedConfig = BleedConfig(),
) -> tuple[dict[str, np.ndarray], list[dict]]:
    """Subtract the leaks between the files of one track: ``(repaired stems, actions)``.

    ``stems``: ``{name: (channels, samples)}`` of one length. Leak sources are measured on the
    files as given (a leak copies what the sibling file holds), subtracted strongest first.
    """
    names = list(stems)
    n = next(iter(stems.values())).shape[1]
    spectra = {s: stft(stems[s], sample_rate) for s in names}
    win = int(config.window_s * sample_rate)
    bounds = np.array([[0, n]] + [[a, min(n, a + win)] for a in range(0, max(1, n - win // 2), win)])
    fractions = track_bleed(spectra, {s: bounds for s in names}, bleed)
    out = {s: stems[s].astype(np.float64) for s in names}
    actions = []
    floor = 10 ** (config.leak_min_db / 10)
    # leak of j in i: over the whole file, and the strongest of the file and its windows
    whole = {i: dict(zip([o for o in names if o != i], fractions[i][2][0])) for i in names}
    peak = {i: dict(zip([o for o in names if o != i], fractions[i][2].max(axis=0))) for i in names}
    for s in names:
        others = [o for o in names if o != s]
        frac = np.array([peak[s][o] for o in others])
        energy = float(np.square(out[s]).sum())
        for k in np.argsort(-frac):
            if frac[k] < floor:
                break
            src = others[int(k)]
            leak = fit_leak(out[s], stems[src], taps=config.taps, pre=config.pre)
            removed_db = 10 * np.log10(max(float(np.square(leak).sum()), 1e-30) / max(energy, 1e-30))
            measured_db = 10 * np.log10(frac[k])
            # a filter that removes much more than the leak model measured is predicting this file's
            # own content (siblings that play the same notes; a sibling that holds a copy of this file
            # when leaks go both ways, then measured over the whole file only): keep the leak
            mutual = peak[src][s] >= floor
            reference = 10 * np.log10(max(whole[s][src] if mutual else frac[k], 1e-30))
            kept = removed_db > reference + config.max_excess_db
            if not kept:
                out[s] = out[s] - leak
            actions.append(
                dict(
                    stem=s,
                    action="leak kept" if kept else "leak",
                    new_stem=None,
                    source_stem=src,
                    leak_db=measured_db,
                    removed_db=None if kept else removed_db,
                )
            )
    return {s: out[s].astype(np.float32) for s in names}, actions


def _check_lengths(track, stems: dict[str, np.ndarray], rows: pd.DataFrame) -> None:
    """:class:`StemcurateError` naming the first file of ``track`` shorter than its manifest ``rows`` say."""
    for stem, end in rows.groupby("stem")["end"].max().items():
        if stem in stems and stems[stem].shape[1] < end:
            raise file_changed(track.source(stem).path, stems[stem].shape[1], int(end))


def swap_moves(frame: pd.DataFrame, *, config: RepairConfig = RepairConfig()) -> dict[tuple[str, str], dict[str, str]]:
    """``{(subset, track): {file's stem: true label}}`` of the files of ``frame`` (a scored manifest's rows)
    that hold each other's label (:func:`swapped_pairs`)."""
    moves: dict[tuple[str, str], dict[str, str]] = {}
    for subset, track, a, b in swapped_pairs(file_labels(frame), config=config):
        moves.setdefault((subset, track), {}).update({a: b, b: a})
    return moves


def repair_dataset(
    manifest: Manifest,
    dst: str | Path,
    *,
    config: RepairConfig = RepairConfig(),
    decisions: pd.DataFrame | None = None,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Write a repaired copy of ``manifest``'s dataset to ``dst``; returns the actions (also ``dst/repairs.parquet``).

    ``decisions``: the review's (:func:`curate.decisions.read_decisions`); a track whose files the review
    relabelled is relabelled as it says, not by the swaps the scan read.

    ``manifest`` must be scored (``curate scan`` with the classifier). The manifest's tracks are
    repaired (a track of its subsets without fragments in it is left out), the data root's other
    subsets copied. Each track's files are read whole.
    """
    frame = manifest.frame
    if not manifest.has_scores:
        raise StemcurateError("the manifest has no scores: run `curate scan` with the classifier first")
    dst, root = output_path(dst), Path(manifest.root).resolve()
    if dst.resolve() == root:
        raise StemcurateError(f"{dst}: the repaired copy must not overwrite the dataset it is made from")
    if root in dst.resolve().parents:
        raise StemcurateError(f"{dst}: the repaired copy must not be inside the dataset it is made from ({root})")
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise StemcurateError(f"{dst}: output folder exists and is not empty")
    layout = manifest.meta.get("layout") or MUSDB
    if layout in WITHOUT_SIBLINGS:
        raise StemcurateError(
            f"{manifest.root}: a {layout} dataset has no tracks: leaks and swaps are repaired between the files "
            "of a track"
        )
    relabel = swap_moves(frame, config=config) if config.relabel else {}
    if decisions is not None and len(decisions):
        new_label = latest(frame, decisions)["new_label"]
        check_relabels(frame, new_label, "the review's decisions")
        relabel.update(review_labels(frame, new_label))  # the review's word
    with atomic_dir(dst) as work:  # an interrupted repair leaves no half-written copy
        rows = []
        subsets = sorted(set(frame["subset"]))
        for subset in subsets:
            scanned = set(frame.loc[frame["subset"] == subset, "track"])
            for track in discover(manifest.root, subset=subset, layout=layout):
                if track.name not in scanned:
                    continue
                try:
                    stems, sr = track.load_all()
                    _check_lengths(track, stems, frame[(frame["subset"] == subset) & (frame["track"] == track.name)])
                except StemcurateError as exc:  # a file no reader can use: the track as it is, and why
                    copy_track(track, work / subset)
                    rows.append(dict(track=track.name, subset=subset, stem="-", action="not repaired", detail=str(exc)))
                    if progress:
                        progress(track.name)
                    continue
                channels = 2 if any(x.shape[0] > 1 for x in stems.values()) else 1  # curate.data.conform's rule
                stems = {k: to_channels(x, channels) for k, x in stems.items()}
                fixed, actions = repair_track(stems, sr, config=config)
                moves = relabel.get((subset, track.name), {})
                for a, b in sorted(moves.items()):
                    actions.append(
                        dict(stem=a, action="relabel", new_stem=b, source_stem=None, leak_db=None, removed_db=None)
                    )
                fixed = {moves.get(s, s): x for s, x in fixed.items()}
                folder = work / subset / track.name
                folder.mkdir(parents=True, exist_ok=True)
                for stem, x in fixed.items():
                    audio_io.write(folder / f"{stem}.wav", x, sr, subtype="FLOAT")
                mix = np.sum(list(fixed.values()), axis=0, dtype=np.float32)
                audio_io.write(folder / f"{MIXTURE}.wav", mix, sr, subtype="FLOAT")
                rows += [dict(track=track.name, subset=subset, **a) for a in actions]
                if progress:
                    progress(track.name)
        if layout == MUSDB:
            copy_subsets(manifest.root, work, skip=set(subsets))
        table = pd.DataFrame(
            rows,
            columns=["track", "subset", "stem", "action", "new_stem", "source_stem", "leak_db", "removed_db", "detail"],
        )
        write_repairs(table, work / REPAIRS_FILE)
        return table
