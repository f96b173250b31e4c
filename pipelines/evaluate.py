"""``pipelines evaluate``: separate every test track and score it the way the field does.

Per track and target: uSDR (SDX global SDR over the whole track) and cSDR (museval's BSSEval v4
SDR, median over 1 s windows; the targets evaluated together, as ``museval.eval_mus_track`` does
with the estimates it is given). Summary per target: uSDR mean ± std over tracks, cSDR median over
tracks (SiSEC 2018). Results go to a Parquet file, and a ``test.log`` beside it, like the seed's
``evaluate.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bsrnn.model import BSRNN
from bsrnn.separator import Separator
from curate.common.atomic import write_text
from curate.common.errors import StemcurateError, as_int, as_path
from curate.common.outputs import LOG_HEADER, check_output, output_path
from curate.data.checks import CheckConfig
from curate.data.conform import peak_dbfs, to_channels
from curate.data.datasets import MIXTURE, discover
from pipelines.metrics import csdr_windows, usdr


def evaluate(
    models: dict[str, BSRNN],
    data_root: str | Path,
    *,
    subset: str = "test",
    tracks: int | None = None,
    track_names: list[str] | None = None,
    device: str = "cpu",
    frame_s: float = 3.0,
    hop_s: float = 2.5,
    on_track: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """One row per track and target: ``track, target, usdr, csdr, windows, seconds, silent, left_out`` (dB, s).

    Each track is read by the rules of :mod:`curate.data.conform`: files whose lengths differ by up to a
    second are cut to the shortest; without a mixture file the mixture is the sum of the stems. A
    track with a mono file is scored in mono (the estimate and the references averaged over
    channels); a file with more than two channels keeps its first two. A target whose reference is
    silent (peak below -70 dBFS) has no uSDR or cSDR (NaN, ``silent``, ``left_out`` "silent
    reference") and is left out of the joint cSDR of the other targets. A track that cannot be scored
    (no file for a target, a file that does not decode or holds NaN/inf or impossible levels, files
    that do not line up, another rate than the models') has NaN scores and ``left_out`` says why.
    ``models``: ``{target: BSRNN}`` (or what :func:`bsrnn.checkpoint.load_models` returns).
    ``track_names``: only these tracks of the subset, in the subset's order (then ``tracks``: the first N of them).
    Raises :class:`StemcurateError` for no models or arguments of the wrong type, a name the subset does not
    hold, and when no track at all could be scored."""
    if isinstance(models, dict):
        models = {t: m[1] if isinstance(m, tuple) and len(m) == 2 else m for t, m in models.items()}
    if not isinstance(models, dict) or not models or not all(isinstance(m, BSRNN) for m in models.values()):
        raise StemcurateError(
            f"models {models!r:.80}: give a non-empty {{target: BSRNN}} dict (bsrnn.checkpoint.load_models)"
        )
    found = discover(as_path(data_root, "data_root"), subset=subset)
    if track_names is not None:
        names = [track_names] if isinstance(track_names, str) else list(track_names)
        if not names:
            raise StemcurateError("track_names: give at least one track name")
        wanted, held = set(names), {t.name for t in found}
        missing = [n for n in dict.fromkeys(names) if n not in held]
        if missing:
            raise StemcurateError(
                f"{data_root}: the {subset} subset has no track named {', '.join(repr(n) for n in missing)}"
                f" ({len(found)} tracks; first: {', '.join(t.name for t in found[:3]) or 'none'})"
            )
        found = [t for t in found if t.name in wanted]
    if tracks is not None:
        found = found[: as_int(tracks, "tracks", low=1)]
    try:
        seps = {
            t: Separator(m, sample_rate=m.config.sample_rate, frame_s=frame_s, hop_s=hop_s, device=device)
            for t, m in models.items()
        }
    except ValueError as exc:
        raise StemcurateError(f"--frame/--hop: {exc}") from None
    rows = []
    for track in found:
        if on_track:
            on_track(track.name)
        try:
            rows += _score_track(track, models, seps)
        except StemcurateError as exc:
            rows += [
                dict(
                    track=track.name,
                    target=t,
                    usdr=np.nan,
                    csdr=np.nan,
                    windows=0,
                    seconds=0.0,
                    silent=False,
                    left_out=str(exc),
                )
                for t in models
            ]
    frame = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    if len(frame) and frame["left_out"].notna().all() and not frame["silent"].any():
        raise StemcurateError(f"{data_root}: no {subset} track could be scored (first: {frame['left_out'].iloc[0]})")
    return frame


RESULT_COLUMNS = ["track", "target", "usdr", "csdr", "windows", "seconds", "silent", "left_out"]


def _score_track(track, models: dict[str, BSRNN], seps: dict[str, Separator]) -> list[dict]:
    """The rows of one track; :class:`StemcurateError` naming the track or file when it cannot be scored."""
    missing = [t for t in models if t not in track.stems]
    if missing:
        raise StemcurateError(f"track '{track.name}': no {', '.join(missing)} stem to compare with")
    # the targets and the mixture, or every stem to sum when there is no mixture file; read to the shortest
    audio, rate = track.load_all([*models, MIXTURE] if track.mixture is not None else None)
    n = next(iter(audio.values())).shape[1]
    if n == 0:
        raise StemcurateError(f"track '{track.name}': no samples")
    wrong = [t for t, m in models.items() if m.config.sample_rate != rate]
    if wrong:
        raise StemcurateError(
            f"track '{track.name}': {rate} Hz, the {wrong[0]} model expects {models[wrong[0]].config.sample_rate} Hz"
        )
    mono = any(a.shape[0] == 1 for a in audio.values())  # one mono file: the track is scored in mono
    channels = 1 if mono else 2
    mix = audio[MIXTURE] if MIXTURE in audio else sum(to_channels(a, channels) for a in audio.values())
    t0 = time.perf_counter()
    ests = {t: sep.separate(to_channels(mix, sep.channels)).numpy() for t, sep in seps.items()}  # mono as dual mono
    seconds = time.perf_counter() - t0
    refs = {t: to_channels(audio[t], channels) for t in models}
    ests = {t: to_channels(e[:, :n], channels) for t, e in ests.items()}
    return score_estimates(track.name, refs, ests, rate, seconds=seconds)


def score_estimates(name: str, refs: dict, ests: dict, rate: int, *, seconds: float = 0.0) -> list[dict]:
    """The result rows (:data:`RESULT_COLUMNS`) of one track from its references and estimates, each
    ``{target: (channels, samples)}`` float arrays of the same shape, at ``rate`` Hz: uSDR over the whole
    track, cSDR the median of museval's 1-s windows (the targets evaluated together); a silent reference
    is left out. ``seconds``: the separation time, shared among the targets."""
    models = list(refs)
    silent = [t for t in models if _silent(refs[t])]
    scored = [t for t in models if t not in silent]
    windows = {}
    if scored:  # evaluated together, as museval does; a silent reference would make every window NaN
        ref = np.stack([refs[t].T for t in scored])
        est = np.stack([ests[t].T for t in scored])
        windows = dict(zip(scored, csdr_windows(ref, est, win=rate, hop=rate)))
    rows = []
    for t in models:
        ok = windows[t][~np.isnan(windows[t])] if t in windows else np.zeros(0)
        track_usdr = float(usdr(torch.from_numpy(refs[t]), torch.from_numpy(ests[t]))) if t in windows else float("nan")
        rows.append(
            dict(
                track=name,
                target=t,
                usdr=track_usdr,
                csdr=float(np.median(ok)) if ok.size else float("nan"),
                windows=int(ok.size),
                seconds=seconds / len(models),
                silent=t in silent,
                left_out="silent reference" if t in silent else None,
            )
        )
    return rows


def _silent(x: np.ndarray) -> bool:
    """A reference whose peak is below the scan's silence level: nothing to score against."""
    return peak_dbfs(x) < CheckConfig().silence_db


def summary_table(results: pd.DataFrame) -> str:
    """Per target: tracks scored, uSDR mean ± std, cSDR median (over tracks), as aligned text.

    Tracks whose reference is silent (``silent``) have no uSDR or cSDR and are left out of both, as
    museval leaves out silent windows; so are tracks that could not be scored (``left_out``). Lines
    under the table say how many, which, and why."""
    lines = [f"{'target':<10}{'tracks':>7}{'uSDR mean ± std':>20}{'cSDR median':>14}"]
    notes = []
    for target, g in results.groupby("target", sort=False):
        silent = g["silent"].astype(bool) if "silent" in g else pd.Series(False, index=g.index)
        u = g.loc[~silent, "usdr"].dropna()
        c = g.loc[~silent, "csdr"].dropna()
        std = u.std(ddof=0) if len(u) > 1 else 0.0
        mean = u.mean() if len(u) else float("nan")
        lines.append(
            f"{target:<10}{len(u):>7}{mean:>12.2f} ± {std:<5.2f}{np.median(c) if len(c) else float('nan'):>14.2f}"
        )
        if silent.any():
            notes.append(
                f"{target}: {int(silent.sum())} track(s) left out, silent reference "
                f"({', '.join(g.loc[silent, 'track'])})"
            )
    if "left_out" in results:
        unread = results[results["left_out"].notna() & ~results["silent"].astype(bool)].drop_duplicates("track")
        notes += [f"left out, cannot be scored: {r.left_out}" for r in unread.itertuples()]
    return "\n".join(lines + notes)


def results_paths(path: str | Path, *, inputs=()) -> tuple[Path, Path]:
    """The results file and its text log (``test.log`` beside ``results.parquet``, else ``<name>.log``),
    checked before any work: each may be new or an earlier evaluation's, never an input or another
    kind of file (:func:`curate.common.outputs.check_output`)."""
    path = output_path(path)
    if path.is_dir() or path.name in ("", ".", ".."):
        raise StemcurateError(f"{path}: is a folder; give the results file (e.g. {path / 'results.parquet'})")
    log = path.parent / "test.log" if path.name == "results.parquet" else path.with_suffix(".log")
    if log == path:
        raise StemcurateError(f"{path}: the results and their text log would be one file; give a .parquet path")
    return check_output(path, "results", inputs=inputs), check_output(log, "evaluation log", inputs=inputs)


def write_results(results: pd.DataFrame, path: str | Path, *, header: str = "") -> tuple[Path, Path]:
    """Write the per-track results (Parquet, kind ``results``) and their log (:func:`results_paths`), atomically."""
    import pyarrow as pa

    from curate.common.outputs import META_KIND
    from curate.data.schema import write_parquet

    path, log = results_paths(path)
    table = pa.Table.from_pandas(results, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KIND: b"results"})
    write_parquet(table, path)
    body = [LOG_HEADER, header, summary_table(results), "", "per track:"]
    body += [
        f"{r.track:<30}{r.target:<10} uSDR {r.usdr:7.2f}  cSDR {r.csdr:7.2f}"
        + (f"  left out: {r.left_out}" if isinstance(getattr(r, "left_out", None), str) else "")
        for r in results.itertuples()
    ]
    write_text(log, "\n".join(b for b in body if b is not None) + "\n")
    return path, log


def default_data_root(run) -> Path | None:
    """The data root of a run's manifest (its test subset sits beside the train subset); ``run`` a
    :class:`~pipelines.runs.RunDir` or None."""
    if run is None:
        return None
    from curate.data.schema import read_manifest

    try:
        manifest = run.load_config()[2]["manifest"]
        return read_manifest(manifest).root
    except StemcurateError:
        return None
