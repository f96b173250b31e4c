"""``curate scan``: check every file, run SAD on every stem, write the manifest.

The per-track stage is :mod:`curate.scantrack`. Resumable: each finished track (a
:class:`~curate.scanparts.TrackScan`) is kept in
``<manifest>.parts/`` (:mod:`curate.scanparts`) and not recomputed by a later run with the same
settings; the manifest and its ``.problems.parquet`` appear atomically at the end, and the parts
folder is then removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from curate.common.atomic import check_folder, ensure_writable_dir
from curate.common.errors import StemcurateError, as_int, as_path
from curate.common.lock import exclusive
from curate.common.outputs import check_output, output_path
from curate.data.checks import CheckConfig, Problem
from curate.data.datasets import (
    DEFAULT_STEMS,
    MIXTURE,
    Track,
    available_stems,
    default_root,
    discover,
    not_tracks,
)
from curate.data.layouts import (
    MEDLEYDB,
    MEDLEYDB_FINE,
    MOISESDB,
    MOISESDB_FINE,
    MSST,
    MUSDB,
    WITHOUT_SIBLINGS,
    explain_layout,
)
from curate.data.schema import (
    MANIFEST_SCHEMA,
    MANIFEST_VERSION,
    empty_frame,
    empty_problems,
    problems_path,
    write_manifest,
    write_problems,
)
from curate.data.tells import one_file_tracks
from curate.exportlists import check_txt_names, write_txt_lists
from curate.scanparts import TrackScan, check_parts, load_part, part_key, prepare_parts, save_part, shard_of
from curate.scantrack import ScoreConfig, init_worker, pad_concat, scan_track, scan_track_job
from curate.scoring.classify import score_labels
from curate.scoring.labelmodel import LabelScores
from curate.scoring.quality import quality as quality_score
from sad import SADConfig


@dataclass
class ScanResult:
    """What a scan produced."""

    manifest: Path
    problems_file: Path
    fragments: pd.DataFrame
    problems: pd.DataFrame
    tracks: int
    stems: list[str]
    resumed: int = 0
    residual_db: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    labels: LabelScores | None = None
    """The label model behind ``label_score`` (None without scores or without enough data)."""
    layout: str = ""
    layout_reason: str = ""
    """The layout the dataset was read in, and why (:func:`curate.data.layouts.explain_layout`)."""


@dataclass
class ShardScan:
    """What ``scan(..., shard=(i, n))`` did: the ``tracks`` of shard ``i`` of ``n`` (of ``total``) are in
    ``parts`` (``resumed`` of them from an earlier run); the scan without ``shard`` merges them."""

    parts: Path
    shard: tuple[int, int]
    tracks: int
    total: int
    resumed: int = 0


def _check_options(*, output, txt_dir, stems, jobs, configs: dict) -> None:
    """:class:`StemcurateError` naming the first option of :func:`scan` of the wrong type or range."""
    as_path(output, "output")
    if txt_dir is not None:
        as_path(txt_dir, "txt_dir")
    if (
        stems is not None
        and not isinstance(stems, str)
        and not (isinstance(stems, (list, tuple)) and all(isinstance(s, str) for s in stems))
    ):
        raise StemcurateError(f"stems {stems!r}: give a stem name or a list of them")
    as_int(jobs, "jobs", low=1)
    for name, (value, kind) in configs.items():
        if not isinstance(value, kind) and not (value is None and name == "score"):
            raise StemcurateError(f"{name} {value!r}: give a {kind.__name__}" + (" or None" if name == "score" else ""))


def _fingerprint(
    root: Path,
    subset: str,
    stems: list[str],
    sad_config: SADConfig,
    check_config: CheckConfig,
    score: ScoreConfig | None,
) -> dict:
    return {
        "version": MANIFEST_VERSION,
        "root": str(root.resolve()),
        "subset": subset,
        "stems": stems,
        "sad": sad_config.to_dict(),
        "checks": check_config.to_dict(),
        "embedder": None if score is None else score.embedder,
        "panns": None if score is None else score.panns_checkpoint,
        "musicnn": None if score is None else score.musicnn_weights,
        "bleed": None if score is None else asdict(score.bleed),
    }


def resolve_stems(tracks: list[Track], stems: list[str] | None, root: Path, *, layout: str = MUSDB) -> list[str]:
    """Validate requested stem names against the files found. Default in the ``musdb``, ``moisesdb`` and
    ``medleydb`` layouts (and ``msst``): those of vocals, bass, drums and other that the data has (a vocals-only dataset
    is scanned for vocals), else every stem it has; in the other layouts every label found."""
    present = available_stems(tracks)
    if stems is None and layout in (MUSDB, MSST, MOISESDB, MEDLEYDB):
        stems = [s for s in DEFAULT_STEMS if s in present] or [s for s in present if s != MIXTURE]
    elif stems is None:
        stems = sorted(s for s in present if s != MIXTURE)
    stems = list(dict.fromkeys(stems))
    if not stems and set(present) <= {MIXTURE}:
        raise StemcurateError(
            f"{root}: its tracks hold a mixture and no stem file: nothing to curate (to separate the "
            "mixtures use pipelines separate)"
        )
    if not stems:
        raise StemcurateError("--stems: no stem names given")
    for s in stems:
        if s == MIXTURE:
            raise StemcurateError("--stems: 'mixture' is not a stem")
        if s not in present:
            fine = {MOISESDB: MOISESDB_FINE, MEDLEYDB: MEDLEYDB_FINE}.get(layout)
            hint = f" (read as the 4 standard stems; --layout {fine} keeps the dataset's own labels)" if fine else ""
            raise StemcurateError(
                f"unknown stem '{s}': tracks under {root} have {', '.join(present) or 'no stems'}{hint}"
            )
    return stems


def scan(
    root: str | Path | None,
    *,
    output: str | Path = "manifest.parquet",
    subset: str = "train",
    stems: list[str] | None = None,
    layout: str | None = None,
    sad_config: SADConfig = SADConfig(),
    check_config: CheckConfig = CheckConfig(),
    score: ScoreConfig | None = ScoreConfig(),
    jobs: int = 1,
    txt_dir: str | Path | None = None,
    on_start: Callable[[int], None] | None = None,
    on_track: Callable[[Track], None] | None = None,
    shard: tuple[int, int] | None = None,
) -> ScanResult | ShardScan:
    """Scan ``subset`` of the dataset at ``root`` and write the manifest to ``output``.

    Stage 1 per track (``jobs`` processes): pre-flight checks, SAD, and with ``score`` the
    fragment embeddings and bleed. Stage 2 over the dataset: the label model, then ``quality``.
    ``score=None`` stops after SAD (score columns stay empty). ``on_start(n_tracks)`` and
    ``on_track(track)`` report progress. Raises :class:`StemcurateError` for bad input
    (missing/empty root, no tracks, unknown stems, unwritable output).

    ``shard=(i, n)``: stage 1 only, for the tracks of shard ``i`` of ``n`` (:func:`~curate.scanparts.shard_of`),
    kept in ``<output>.parts`` (shared by the shards: run them anywhere that sees the same folders, at the
    same time or not); returns a :class:`ShardScan` and writes no manifest. The same call without
    ``shard`` then takes every finished track from there, scans any left, and fits the label model.
    """
    _check_options(
        output=output,
        txt_dir=txt_dir,
        stems=stems,
        jobs=jobs,
        configs=dict(
            sad_config=(sad_config, SADConfig), check_config=(check_config, CheckConfig), score=(score, ScoreConfig)
        ),
    )
    if shard is not None and not (
        isinstance(shard, tuple)
        and len(shard) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in shard)
        and 0 <= shard[0] < shard[1]
    ):
        raise StemcurateError(f"shard {shard!r}: give (I, N) with 0 <= I < N")
    stems = [stems] if isinstance(stems, str) else stems
    output = output_path(output)
    ensure_writable_dir(output)
    check_output(output, "manifest")
    check_output(problems_path(output), "problems")
    with contextlib.nullcontext() if shard is not None else exclusive(output, what="curate scan"):
        parts = output.with_name(output.name + ".parts")
        check_parts(parts)
        txt_dir = None if txt_dir is None else output_path(txt_dir)
        if txt_dir is not None:  # the seed's list names: {stem}_{subset}.txt, replaced on a re-scan
            check_folder(txt_dir)
        source = root if root is not None else default_root()
        layout_reason = ""
        if source is not None:
            source = as_path(source, "root")
            layout, layout_reason = explain_layout(source, layout)
        tracks = discover(source, subset=subset, layout=layout)
        root = tracks[0].root
        if txt_dir is not None:
            check_txt_names([t.name for t in tracks], root, lists="the --txt-dir lists")
        stems = resolve_stems(tracks, stems, root, layout=layout or MUSDB)
        scanned, reference = stems, None
        if score is not None and (score.embedder is not None or score.separator is not None):
            from bsrnn.separator import torch_device

            torch_device(score.device)
        if score is not None and score.embedder is not None:
            score.make_embedder()  # fail early on a bad model
            # the label model reads the track's other standard stems too, unscored: a stem scanned alone
            # (--stems vocals) has no sibling to tell "holds drums" from "holds its label" otherwise
            present = available_stems(tracks)
            scanned = stems + [s for s in DEFAULT_STEMS if s in present and s not in stems]
        if score is not None and score.embedder is not None and shard is None:  # the label model's: not a shard's
            from curate.reference import reference_pool

            # before any track is scanned: a --reference folder without tracks fails now, not after the scan
            reference = reference_pool(
                score.embedder,
                synth=score.reference_pool,
                dirs=score.reference or (),
                stems=scanned,
                device=score.device,
                panns_checkpoint=score.panns_checkpoint,
                musicnn_weights=score.musicnn_weights,
            )
        settings = {**_fingerprint(root, subset, scanned, sad_config, check_config, score), "layout": layout}
        prepare_parts(parts, settings, shard=shard is not None)
        mine = tracks if shard is None else [t for t in tracks if shard_of(t, shard[1]) == shard[0]]
        if on_start:
            on_start(len(mine))

        results: dict[str, TrackScan] = {}
        todo = []
        keys = {
            track.name: part_key(track) for track in mine
        }  # taken before scanning: a file changed meanwhile is scanned again next time
        for track in mine:
            part = load_part(parts, keys[track.name])
            if part is None:
                todo.append(track)
            else:
                results[track.name] = part
                if on_track:
                    on_track(track)
        resumed = len(results)

        def finished(track, out: TrackScan):
            save_part(parts, keys[track.name], out)
            results[track.name] = out
            if on_track:
                on_track(track)

        if jobs > 1 and len(todo) > 1:
            from concurrent.futures import as_completed

            from curate.common.workers import worker_pool

            workers_n = min(
                jobs, len(todo), os.cpu_count() or 1
            )  # more processes than cores or tracks only cost memory
            with worker_pool(workers_n, initializer=init_worker) as workers:
                futures = {
                    workers.submit(scan_track_job, (t, scanned, sad_config, check_config, score)): t for t in todo
                }
                for fut in as_completed(futures):
                    finished(futures[fut], fut.result())
        else:
            for track in todo:
                finished(
                    track, scan_track(track, scanned, sad_config=sad_config, check_config=check_config, score=score)
                )

        if shard is not None:
            return ShardScan(parts, shard, len(mine), len(tracks), resumed)
        frames, embs, problems, residuals = [], [], [], {}
        for track in tracks:
            done = results[track.name]
            if len(done.rows):
                frames.append(done.rows)
                embs.append(done.arrays)
            problems.extend(done.problems)
            residuals[track.name] = done.residual_db
        fragments = pd.concat(frames, ignore_index=True) if frames else empty_frame()
        for col in empty_frame().columns:
            if col not in fragments.columns:
                fragments[col] = None
        order = fragments.sort_values(["track", "stem", "start"], kind="stable").index.to_numpy()
        fragments = fragments.loc[order].reset_index(drop=True)
        warn: list[str] = [w for w in [one_file_tracks(tracks)] if w]
        labels = None
        if score is not None and score.embedder is not None and len(fragments):
            arrays = {k: pad_concat([e[k] for e in embs if e and k in e])[order] for k in ("emb", "env")}
            labels = _score(fragments, arrays["emb"], arrays["env"], score, root, reference, warn)
        if layout in WITHOUT_SIBLINGS:
            warn.append(
                f"a {layout} dataset has no track structure: labels rest on per-stem evidence only (instrument "
                "classifier, reference pool, embedding); no bleed measure"
            )
        if scanned != stems:  # the context stems leave the manifest and the problems
            fragments = fragments[fragments["stem"].isin(stems)].reset_index(drop=True)
            problems = [p for p in problems if p.stem is None or p.stem in stems or p.stem == MIXTURE]
        problems += [
            Problem(
                entry.name, subset, None, Path(os.path.relpath(entry, root)).as_posix(), "not_a_track", "skipped", why
            )
            for entry, why in not_tracks(source, subset=subset, layout=layout)
        ]
        problem_frame = pd.DataFrame([asdict(p) for p in problems]) if problems else empty_problems()
        meta = {
            "subset": subset,
            "stems": stems,
            "layout": layout,
            "layout_reason": layout_reason,
            "source": str(Path(source).resolve()),
            "sad": sad_config.to_dict(),
            "checks": check_config.to_dict(),
            "score": None if score is None else score.to_dict(),
            "label_model": None
            if labels is None
            else {
                "reference_units": labels.reference_units,
                "dataset_share": round(labels.dataset_share, 4),
                "noise_rate": round(labels.eps, 4),
            },
            "tracks": len(tracks),
            "residual_db": {
                k: (None if v is None or not np.isfinite(v) else round(v, 2)) for k, v in residuals.items()
            },
        }
        fragments = fragments[
            [*MANIFEST_SCHEMA.names, *(c for c in fragments.columns if c not in MANIFEST_SCHEMA.names)]
        ]  # the manifest's column order, resumed or not
        prob_path = problems_path(output)
        write_problems(problem_frame, prob_path)
        write_manifest(fragments, output, root=root, meta=meta)
        if txt_dir is not None:
            write_txt_lists(fragments, Path(txt_dir), subset, stems)
        shutil.rmtree(parts, ignore_errors=True)
        return ScanResult(
            output,
            prob_path,
            fragments,
            problem_frame,
            len(tracks),
            stems,
            resumed,
            residuals,
            warn,
            labels,
            layout=layout or MUSDB,
            layout_reason=layout_reason,
        )


def _score(
    fragments: pd.DataFrame, emb: np.ndarray, env: np.ndarray, score: ScoreConfig, root: Path, pool, warn: list[str]
) -> LabelScores | None:
    """Fill ``label_score``, ``predicted_stem``, ``separation_db`` (with ``score.separator``) and ``quality``
    in place, with the reference ``pool`` (:func:`curate.reference.reference_pool`, or None); append
    warnings to ``warn``; return the label model's details."""
    n_tracks = fragments["track"].nunique()
    labels = None
    classes = set(fragments["stem"]) | (set(pool.units["stem"]) if pool is not None and len(pool) else set())
    if len(classes) >= 2 and (n_tracks >= 2 or (pool is not None and len(pool))):
        labels = score_labels(fragments, emb, env, config=score.labels, reference=pool)
        fragments["label_score"] = labels.fragments["label_score"].to_numpy()
        fragments["predicted_stem"] = labels.fragments["predicted_stem"].to_numpy()
        if labels.dataset_share < 0.5:
            warn.append(
                f"label model: {100 * labels.dataset_share:.0f} % of its training came from this dataset ({n_tracks} "
                f"track(s)), "
                f"the rest from the reference pool ({labels.reference_units} units)"
            )
    else:
        warn.append(
            f"label scores need 2 classes (stems scanned or in the reference pool) and 2 tracks or a reference pool "
            f"(have {n_tracks} track(s), classes {', '.join(sorted(classes)) or 'none'}); quality uses bleed only"
        )
    if score.separator:
        from curate.scoring.selfsep import load_separator, separation_db

        fragments["separation_db"] = separation_db(
            fragments, root, load_separator(score.separator, device=score.device)
        )
    fragments["quality"] = quality_score(
        fragments["label_score"].to_numpy(dtype=float),
        fragments["bleed_db"].to_numpy(dtype=float),
        fragments["separation_db"].to_numpy(dtype=float),
        fragments["mixture_lock"].to_numpy(dtype=float),
    )
    return labels
