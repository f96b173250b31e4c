"""The per-track stage of ``curate scan``: checks, SAD, and with a :class:`ScoreConfig` the embeddings,
onset envelopes and bleed of every fragment of one track (:func:`scan_track`).

Each track is independent of the others: :func:`curate.scan.scan` runs this stage in worker processes
(``--jobs``) and keeps each result as a part (:mod:`curate.scanparts`) before the dataset-wide label model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from curate.data.checks import WARNING, CheckConfig, Problem, check_track
from curate.data.datasets import MIXTURE, Track
from curate.scanparts import ROW_COLUMNS, TrackScan
from curate.scoring.bleed import BleedConfig, bleed_of_fractions, track_bleed
from curate.scoring.context import onset_envelope, unit_envelopes
from curate.scoring.embed import DEFAULT_EMBEDDER, make_embedder
from curate.scoring.labelmodel import LabelModelConfig, unit_bounds
from curate.scoring.quality import separated_factor
from curate.scoring.separated import mixture_lock
from curate.scoring.spectra import StemSpectrum, stft
from sad import SADConfig, detect


@dataclass(frozen=True)
class ScoreConfig:
    """The scoring stage of a scan: embedder, bleed and label model. ``embedder=None``: SAD only."""

    embedder: str | None = DEFAULT_EMBEDDER
    panns_checkpoint: str | None = None
    musicnn_weights: str | None = None
    """Another MTT_musicnn weight file (safetensors) than the shipped one."""
    device: str = "cpu"
    bleed: BleedConfig = BleedConfig()
    labels: LabelModelConfig = LabelModelConfig()
    separator: tuple | None = None  # trained BSRNN checkpoints (files or saved_models folders): self-separation
    reference_pool: bool = True
    """Let the shipped ``curate synth`` pool join the label model's fits (:mod:`curate.reference`)."""
    reference: tuple | None = None
    """Folders of the user's trusted clean stems that join the pool."""

    def __post_init__(self):
        for name in ("panns_checkpoint", "musicnn_weights"):  # a Path is accepted; stored as str for metadata
            if getattr(self, name) is not None:
                object.__setattr__(self, name, str(getattr(self, name)))
        for name in ("separator", "reference"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, tuple(str(p) for p in getattr(self, name)))

    def make_embedder(self):
        """The embedder of these settings (loaded once per process)."""
        return make_embedder(self.embedder, self.panns_checkpoint, self.device, self.musicnn_weights)

    def to_dict(self) -> dict:
        return asdict(self)


def fragment_rows(track: Track, stem: str, audio: np.ndarray, sample_rate: int, sad_config: SADConfig) -> list[dict]:
    """Manifest rows for the salient fragments of one stem ``audio`` ``(channels, samples)``."""
    bounds = detect(audio, sample_rate, sad_config)
    src = track.source(stem)
    rel, parts = src.relative_to(track.root), src.parts_relative_to(track.root)
    rows = []
    for start, end in bounds:
        seg = audio[:, start:end].astype(np.float64)
        ms = float(np.mean(seg**2)) if seg.size else 0.0
        rows.append(
            dict(
                track=track.name,
                subset=track.subset,
                stem=stem,
                path=rel,
                start=int(start),
                end=int(end),
                sample_rate=int(sample_rate),
                channels=int(audio.shape[0]),
                rms_db=float(10 * np.log10(max(ms, 1e-20))),
                parts=parts,
                dataset_bleed=track.bleed.get(stem),
            )
        )
    return rows


def _no_fragments(track: Track, stem: str, seconds: float, sad_config: SADConfig) -> Problem:
    """The problem row of a stem that yields no fragment: too short for the detection window, or never active enough."""
    if seconds < sad_config.window_s:
        why = (
            f"{seconds:.1f} s, shorter than the {sad_config.window_s:g}-s detection window (try --sad-window "
            f"{max(seconds / 2, 0.5):.1f})"
        )
    else:
        why = (
            f"no {sad_config.window_s:g}-s window is active enough (quiet or sparse throughout; see --sad-window, "
            "--sad-min-active)"
        )
    return Problem(
        track.name,
        track.subset,
        stem,
        track.source(stem).relative_to(track.root),
        "no_fragments",
        WARNING,
        f"no fragment: {why}",
    )


def scan_track(
    track: Track,
    stems: list[str],
    *,
    sad_config: SADConfig = SADConfig(),
    check_config: CheckConfig = CheckConfig(),
    score: ScoreConfig | None = None,
) -> TrackScan:
    """Check one track, detect the salient fragments of its requested stems and, with ``score``,
    embed them and measure their bleed (from every stem of the track, requested or not)."""
    checked = check_track(track, stems, check_config)
    rows, bounds = [], {}
    for stem in stems:
        if stem in checked.audio and stem != MIXTURE:
            stem_rows = fragment_rows(track, stem, checked.audio[stem], checked.sample_rate, sad_config)
            if not stem_rows:
                checked.problems.append(
                    _no_fragments(track, stem, checked.audio[stem].shape[1] / checked.sample_rate, sad_config)
                )
            rows.extend(stem_rows)
            bounds[stem] = np.array([[r["start"], r["end"]] for r in stem_rows], dtype=np.int64).reshape(-1, 2)
    if score is None or score.embedder is None:
        return TrackScan(pd.DataFrame(rows, columns=ROW_COLUMNS), checked.problems, checked.residual_db, None)
    sources = {n: x for n, x in checked.audio.items() if n != MIXTURE}
    if sources:  # the other stems that passed the same checks: possible sources of a leak
        sources.update(checked.context or {})
    spectra = {n: stft(x, checked.sample_rate) for n, x in sources.items()}
    embedder = score.make_embedder()
    embs, envs, bleed = [], [], {}
    locks: dict[str, np.ndarray] = {}
    if spectra:  # a stem without siblings reads the floor (-80 dB: no leak), not NaN
        full_bounds = {n: bounds.get(n, np.zeros((0, 2), np.int64)) for n in spectra}
        bleed, locks = bleed_and_locks(spectra, full_bounds, score.bleed)
    per = score.labels.units
    for stem, b in bounds.items():
        if len(b):
            units = unit_bounds(b, per).reshape(-1, 2)
            embs.append(embedder.embed(sources[stem], spectra[stem], units).reshape(len(b), per, -1))
            length = int(-(-(units[:, 1] - units[:, 0]).max() // spectra[stem].hop))
            env = unit_envelopes(onset_envelope(spectra[stem]), units, spectra[stem].hop, length)
            envs.append(env.reshape(len(b), per, length))
    k = 0
    for stem, b in bounds.items():
        db, src, frac, delay = bleed.get(stem, (np.full(len(b), np.nan), [None] * len(b), None, None))
        lock = locks.get(stem, np.full(len(b), np.nan))
        for q in range(len(b)):
            rows[k + q]["bleed_db"] = float(db[q])
            rows[k + q]["bleed_stem"] = src[q]
            # the delay of the strongest source's path, ms
            rows[k + q]["bleed_delay_ms"] = float(delay[q, frac[q].argmax()]) if src[q] is not None else np.nan
            rows[k + q]["mixture_lock"] = float(lock[q])
        k += len(b)
    frame = pd.DataFrame(rows, columns=ROW_COLUMNS)
    if not embs:
        return TrackScan(frame, checked.problems, checked.residual_db, {})
    arrays = {"emb": np.concatenate(embs).astype(np.float32), "env": pad_concat(envs)}
    return TrackScan(frame, checked.problems, checked.residual_db, arrays)


def bleed_and_locks(
    spectra: dict[str, StemSpectrum], bounds: dict[str, np.ndarray], config: BleedConfig = BleedConfig()
) -> tuple[dict[str, tuple], dict[str, np.ndarray]]:
    """The leaks and mixture locks of every fragment of one track's stems.

    ``spectra``: STFT per stem (same rate, size and length); ``bounds``: ``(n, 2)`` sample bounds per stem.
    Returns :func:`~curate.scoring.bleed.track_bleed`'s result (read ``with_delays``) less the leaks read
    from a separator's output near zero delay (:func:`without_separated_sources`), and per stem the
    :func:`~curate.scoring.separated.mixture_lock` of each fragment ``(n,)`` (none for a single stem).
    Raises ``ValueError`` as :func:`~curate.scoring.bleed.track_bleed` does."""
    bleed = track_bleed(spectra, bounds, config, with_delays=True)
    if len(spectra) < 2:
        return bleed, {}
    first = next(iter(spectra.values()))
    length = first.frames * first.hop  # every frame (frame_bounds clips)
    whole = {k: np.concatenate([b, [[0, length]]]).astype(np.int64) for k, b in bounds.items()}
    both = mixture_lock(spectra, whole)  # each stem's fragments and, last, the whole stem
    locks = {k: v[:-1] for k, v in both.items()}
    whole_lock = {k: float(v[-1]) for k, v in both.items()}
    return without_separated_sources(bleed, whole_lock, zero_delay_ms=config.separated_delay_ms), locks


def without_separated_sources(
    bleed: dict[str, tuple], whole_lock: dict[str, float], *, zero_delay_ms: float | None = None
) -> dict[str, tuple]:
    """:func:`~curate.scoring.bleed.track_bleed`'s result without the leaks read from a stem that is a separator's
    output (``whole_lock``: each stem's :func:`~curate.scoring.separated.mixture_lock` over the whole stem,
    NaN where not measured): a mask estimate holds masked pieces of its siblings, so it reads as their source
    at zero delay, but the content came from them. The separated stem itself is blamed by its own lock.

    ``zero_delay_ms``: with ``bleed`` read ``with_delays`` (a fourth item per stem, ``(n, others)`` ms), only the
    readings at most this delay are dropped: a mask shares its siblings' frames, it does not delay them, so a
    reading at a clear delay is a leak path of its own (the recording leaked into a sibling too). None: every
    reading from a separated stem is dropped."""
    names = list(whole_lock)
    separated = {n for n, v in whole_lock.items() if v == v and float(separated_factor(v)) < 0.5}
    if not separated:
        return bleed
    out = {}
    for stem, (db, src, frac, *rest) in bleed.items():
        others = [n for n in names if n != stem]
        drop = [k for k, n in enumerate(others) if n in separated]
        if not drop or frac.shape[1] != len(others):
            out[stem] = (db, src, frac, *rest)
            continue
        frac = frac.copy()
        if zero_delay_ms is not None and rest:
            delayed = np.asarray(rest[0])[:, drop] > zero_delay_ms
            frac[:, drop] = np.where(delayed, frac[:, drop], 0.0)
        else:
            frac[:, drop] = 0.0
        out[stem] = (*bleed_of_fractions(frac, others), frac, *rest)
    return out


def pad_concat(arrays: list[np.ndarray]) -> np.ndarray:
    """Concatenate ``(n_i, ..., L_i)`` arrays along axis 0, zero-padding the last axis to the longest."""
    if not arrays:
        return np.zeros((0,), np.float16)
    length = max(a.shape[-1] for a in arrays)
    return np.concatenate([np.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, length - a.shape[-1])]) for a in arrays])


_WORKER_LIMITS = None


def init_worker() -> None:
    """One thread per worker process: ``--jobs N`` runs N tracks side by side, and a worker whose
    torch and BLAS also start a thread per core oversubscribes the CPU (real scan, 2 jobs on 2 cores:
    51 s for the tracks with default threads, 35 s with one each)."""
    global _WORKER_LIMITS
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    _WORKER_LIMITS = threadpool_limits(limits=1)  # kept for the worker's life


def scan_track_job(args):
    """:func:`scan_track` of one ``(track, stems, sad_config, check_config, score)`` tuple (a worker's job)."""
    track, stems, sad_config, check_config, score = args
    return scan_track(track, stems, sad_config=sad_config, check_config=check_config, score=score)
