"""Training examples from a manifest: only the manifest's fragments are ever heard.

For a target stem, an example is a random crop around one of the target's fragments; the
accompaniment is the same track's other stems over the same window (or, with probability
``remix_p``, 1-3 random non-target fragments of other tracks); an accompaniment stem of which the
track has no kept fragment at all (curation rejected the whole stem) is taken from another track
(``fill_missing``, off by default: the examples then look like full mixtures, but at short CPU
budgets the easier gapped examples trained better; see docs/benchmarks.md); every source gets a
random gain and, with probability ``swap_p``, its left and right channels swapped;
with probability ``speed_p`` the whole example plays at a speed factor uniform within
``1 ± speed_range`` (every source resampled by the same factor: pitch and tempo change together, the
sources stay aligned); with probability ``silence_p`` the target is silent. Each source is read
lazily and multiplied by the mask of its stem's kept fragments (with short fades), so audio that
curation rejected or never indexed is not used for targets nor for accompaniment. Example ``i``
depends only on ``(seed, i)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import soxr
import torch
from torch.utils.data import Dataset, Sampler

from curate.common.errors import StemcurateError
from curate.data.conform import to_channels
from curate.data.datasets import load_segment
from curate.data.regions import region_mask
from curate.data.schema import Manifest
from curate.simulate.truth import manifest_truth
from pipelines.config import TrainConfig


def fragment_corrupted(manifest: Manifest) -> tuple[np.ndarray, list[frozenset]]:
    """Ground truth per row, when there is some: ``(flags, sources)`` with flags 1 corrupted, 0 clean,
    -1 unknown, and the stems whose content is wrongly in the fragment (empty when not known).

    From :func:`curate.simulate.truth.manifest_truth`.
    """
    frame = manifest.frame
    truth = manifest_truth(manifest)
    if truth is None:
        return np.full(len(frame), -1, dtype=np.int8), [frozenset()] * len(frame)
    col = truth["corrupted"].astype("boolean")
    flags = np.where(col.isna().to_numpy(), -1, col.fillna(False).to_numpy(dtype=bool).astype(np.int8)).astype(np.int8)
    src = truth["corruption_source"] if "corruption_source" in truth.columns else pd.Series([None] * len(frame))
    sources = [frozenset(v.split(",")) if isinstance(v, str) and v else frozenset() for v in src]
    return flags, sources


def split_tracks(tracks: list[str], cfg: TrainConfig) -> tuple[list[str], list[str]]:
    """``(train, valid)`` track names: ``cfg.valid_tracks``, or a seeded ``valid_fraction`` of them."""
    tracks = sorted(set(tracks))
    if cfg.valid_tracks:
        unknown = sorted(set(cfg.valid_tracks) - set(tracks))
        if unknown:
            raise StemcurateError(f"--valid-tracks: not in the manifest: {', '.join(unknown)}")
        valid = sorted(cfg.valid_tracks)
    elif cfg.valid_fraction > 0 and len(tracks) >= 2:
        n = min(len(tracks) - 1, max(1, round(cfg.valid_fraction * len(tracks))))
        order = np.random.default_rng(cfg.seed).permutation(len(tracks))
        valid = sorted(tracks[i] for i in order[:n])
    else:
        valid = []
    train = [t for t in tracks if t not in set(valid)]
    if not train:
        raise StemcurateError("no training tracks left after holding back the validation tracks")
    return train, valid


class FragmentPool:
    """The kept fragments of some tracks, indexed by ``(track, stem)``, with quality and truth per fragment."""

    def __init__(self, manifest: Manifest, tracks: list[str], *, truth: tuple | None = None):
        frame = manifest.frame.reset_index(drop=True)
        keep = frame["track"].isin(set(tracks)).to_numpy()
        flags, sources = fragment_corrupted(manifest) if truth is None else truth
        self.root = manifest.root
        self.frame = frame[keep].reset_index(drop=True)
        self.corrupted = np.asarray(flags)[keep]
        self.sources = [s for s, k in zip(sources, keep) if k]
        quality = self.frame["quality"].astype("float64").to_numpy()
        self.quality = np.where(np.isnan(quality), 1.0, quality)
        self.has_truth = bool((self.corrupted >= 0).any())
        self.by_source: dict[tuple[str, str], np.ndarray] = {}
        for key, idx in self.frame.groupby(["track", "stem"], sort=True).indices.items():
            order = np.argsort(self.frame["start"].to_numpy()[idx], kind="stable")
            self.by_source[key] = np.asarray(idx)[order]
        self.stems_of: dict[str, list[str]] = {}
        for track, stem in self.by_source:
            self.stems_of.setdefault(track, []).append(stem)
        self.starts = self.frame["start"].to_numpy(np.int64)
        self.ends = self.frame["end"].to_numpy(np.int64)
        self.rates = self.frame["sample_rate"].to_numpy(np.int64)

    def rows(self, *, stem: str | None = None, exclude_stem: str | None = None) -> np.ndarray:
        """Row indices of one stem, or of all stems but one."""
        s = self.frame["stem"].to_numpy()
        if stem is not None:
            return np.flatnonzero(s == stem)
        return np.flatnonzero(s != exclude_stem)

    def read(
        self,
        track: str,
        stem: str,
        start: int,
        length: int,
        *,
        sample_rate: int,
        channels: int,
        fade_s: float,
        target: str | None = None,
    ):
        """Audio of ``track/stem`` over file samples ``[start, start + length)`` masked to its kept fragments.

        Returns ``(audio (channels, round(length * sample_rate / file_rate)) float32, min quality,
        flag)``, or ``None`` when no kept fragment overlaps the window. ``flag`` is 1 when a fragment
        read is corrupted in a way that misleads a ``target`` model (it is the target stem and holds
        wrong content, or another stem holding target content; any corruption when ``target`` is
        None or the sources are unknown), 0 when all are known clean, -1 when unknown.
        """
        idx = self.by_source.get((track, stem))
        if idx is None:
            return None
        stop = start + length
        hit = idx[(self.starts[idx] < stop) & (self.ends[idx] > start)]
        if hit.size == 0:
            return None
        file_rate = int(self.rates[hit[0]])
        path = self.frame["path"].iat[hit[0]]
        parts = self.frame["parts"].iat[hit[0]] if "parts" in self.frame.columns else None
        lo = max(0, start)
        x, _ = load_segment(
            self.root, path, stem, lo, stop, need=min(stop, int(self.ends[hit].max())) - lo, parts=parts
        )
        if not np.isfinite(x).all():  # the file changed since the scan, which checked every sample
            raise StemcurateError(
                f"{self.root / path}: {int((~np.isfinite(x)).sum())} NaN/inf samples in samples {lo}-{stop} "
                f"('{stem}' of '{track}'; the file changed since the scan? scan it again)"
            )
        audio = np.zeros((x.shape[0], length), dtype=np.float32)
        audio[:, lo - start : lo - start + x.shape[1]] = x[:, : length - (lo - start)]
        audio *= region_mask(self.starts[hit] - start, self.ends[hit] - start, length, int(fade_s * file_rate))
        audio = to_channels(audio, channels)  # the scan's rule: mono repeated, the first channels kept
        if file_rate != sample_rate:
            out_len = round(length * sample_rate / file_rate)
            audio = soxr.resample(audio.T, file_rate, sample_rate).T
            audio = np.ascontiguousarray(_fix_length(audio, out_len), dtype=np.float32)
        c = self.corrupted[hit]
        bad = [
            i
            for i in hit
            if self.corrupted[i] == 1
            and (target is None or stem == target or not self.sources[i] or target in self.sources[i])
        ]
        flag = 1 if bad else (0 if ((c == 0) | (c == 1)).all() else -1)
        return audio, float(self.quality[hit].min()), flag


def _fix_length(x: np.ndarray, n: int) -> np.ndarray:
    if x.shape[1] >= n:
        return x[:, :n]
    return np.pad(x, ((0, 0), (0, n - x.shape[1])))


def _play_at(x: np.ndarray, speed: float, n: int) -> np.ndarray:
    """``(channels, samples)`` audio played ``speed`` times as fast (resampled by ``1 / speed``: pitch and tempo
    together), cut or padded to ``n`` samples."""
    if speed != 1.0:
        x = np.ascontiguousarray(soxr.resample(x.T, speed, 1.0).T, dtype=np.float32)
    return _fix_length(x, n)


def _weighted_pick(rng: np.random.Generator, rows: np.ndarray, cum: np.ndarray) -> int:
    return int(rows[np.searchsorted(cum, rng.random() * cum[-1], side="right")])


class TrainExamples(Dataset):
    """Random training examples for one target; ``len`` is the number of indices the sampler may ask for.

    Item: dict of ``mixture`` and ``target`` float32 ``(channels, samples)`` tensors, ``quality``
    (min quality of the sources heard; 1 when unscored), ``corrupted`` (1/0/-1 unknown) and ``index``.
    """

    def __init__(
        self, pool: FragmentPool, target: str, cfg: TrainConfig, *, sample_rate: int, channels: int, length: int
    ):
        self.pool, self.target, self.cfg = pool, target, cfg
        self.sample_rate, self.channels, self.length = sample_rate, channels, length
        self.targets = pool.rows(stem=target)
        if self.targets.size == 0:
            raise StemcurateError(f"no '{target}' fragments in the training tracks of the manifest")
        self.others = pool.rows(exclude_stem=target)
        dur = (pool.ends - pool.starts).astype(np.float64)
        self.target_cum = np.cumsum(dur[self.targets])
        self.other_cum = np.cumsum(dur[self.others]) if self.others.size else None
        # per accompaniment stem: its kept rows (for filling in what curation removed from a track)
        self.fill = {}
        for s in sorted(set(pool.frame["stem"]) - {target}):
            rows = pool.rows(stem=s)
            self.fill[s] = (rows, np.cumsum(dur[rows]))

    def __len__(self) -> int:
        return self.length

    def _window(self, rng: np.random.Generator, row: int, speed: float = 1.0) -> tuple[int, int]:
        p = self.pool
        n = round(self.cfg.crop_s * speed * int(p.rates[row]))
        s, e = int(p.starts[row]), int(p.ends[row])
        if e - s >= n:
            return int(rng.integers(s, e - n + 1)), n
        return max(0, s - int(rng.integers(0, n - (e - s) + 1))), n

    def __getitem__(self, index: int) -> dict:
        cfg, p = self.cfg, self.pool
        rng = np.random.default_rng([cfg.seed, int(index)])
        # the speed has its own stream, so that speed_p 0 leaves every other draw as it was
        speed_rng = np.random.default_rng([cfg.seed, int(index), 1])
        speed = 1.0
        if speed_rng.random() < cfg.speed_p:
            speed = float(speed_rng.uniform(1 - cfg.speed_range, 1 + cfg.speed_range))
        row = _weighted_pick(rng, self.targets, self.target_cum)
        track = p.frame["track"].iat[row]
        start, n = self._window(rng, row, speed)
        silent = rng.random() < cfg.silence_p
        sources = []  # (track, stem, start, length)
        if self.other_cum is not None and rng.random() < cfg.remix_p:
            for _ in range(int(rng.integers(1, 4))):
                orow = _weighted_pick(rng, self.others, self.other_cum)
                ostart, on = self._window(rng, orow, speed)
                sources.append((p.frame["track"].iat[orow], p.frame["stem"].iat[orow], ostart, on))
        else:
            sources = [(track, s, start, n) for s in self.fill]
        gains = 10 ** (rng.uniform(-cfg.gain_db, cfg.gain_db, size=1 + len(sources)) / 20)
        read = dict(sample_rate=self.sample_rate, channels=self.channels, fade_s=cfg.fade_s, target=self.target)
        out_len = round(cfg.crop_s * self.sample_rate)
        if cfg.fill_missing:  # a stem with nothing kept in this track: the same stem from another track
            for k, (t, s, _, _) in enumerate(sources):
                if t == track and (t, s) not in p.by_source:  # same-track sources are the stems of self.fill
                    frow = _weighted_pick(rng, *self.fill[s])
                    fst, fn = self._window(rng, frow, speed)
                    sources[k] = (p.frame["track"].iat[frow], s, fst, fn)
        # channel swap per source; drawn last, so that swap_p 0 leaves every other draw as it was
        swaps = rng.random(1 + len(sources)) < cfg.swap_p if cfg.swap_p > 0 else np.zeros(1 + len(sources), bool)
        tgt, quality, flag = p.read(track, self.target, start, n, **read)
        tgt = _play_at(tgt, speed, out_len)
        tgt = (tgt[::-1] if swaps[0] else tgt) * gains[0]
        qualities, flags = ([] if silent else [quality]), ([] if silent else [flag])
        if silent:
            tgt = np.zeros_like(tgt)
        mix = tgt.copy()
        for (t, s, st, ln), g, swap in zip(sources, gains[1:], swaps[1:]):
            got = p.read(t, s, st, ln, **read)
            if got is None:
                continue
            audio = _play_at(got[0], speed, out_len)
            mix += (audio[::-1] if swap else audio) * g
            qualities.append(got[1])
            flags.append(got[2])
        flag = 1 if 1 in flags else (0 if flags and all(f == 0 for f in flags) else -1)
        return {
            "mixture": torch.from_numpy(mix.astype(np.float32)),
            "target": torch.from_numpy(tgt.astype(np.float32)),
            "quality": torch.tensor(min(qualities) if qualities else 1.0, dtype=torch.float32),
            "corrupted": torch.tensor(flag, dtype=torch.int8),
            "index": torch.tensor(int(index)),
        }


class ValidExamples(Dataset):
    """Fixed validation crops: up to ``valid_crops_per_track`` windows starting at the target's fragments,
    mixture = the track's kept stems over the window, no augmentation."""

    def __init__(self, pool: FragmentPool, target: str, cfg: TrainConfig, *, sample_rate: int, channels: int):
        self.pool, self.target, self.cfg = pool, target, cfg
        self.sample_rate, self.channels = sample_rate, channels
        self.items: list[tuple[str, int, int]] = []
        for track in sorted(pool.stems_of):
            rows = pool.by_source.get((track, target))
            if rows is None:
                continue
            pick = rows[
                np.unique(np.linspace(0, len(rows) - 1, min(len(rows), cfg.valid_crops_per_track)).round().astype(int))
            ]
            for r in pick:
                self.items.append((track, int(pool.starts[r]), round(cfg.valid_crop_s * int(pool.rates[r]))))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        track, start, n = self.items[i]
        read = dict(sample_rate=self.sample_rate, channels=self.channels, fade_s=self.cfg.fade_s)
        out_len = round(self.cfg.valid_crop_s * self.sample_rate)
        tgt = _fix_length(self.pool.read(track, self.target, start, n, **read)[0], out_len)
        mix = tgt.copy()
        for s in self.pool.stems_of[track]:
            if s != self.target:
                got = self.pool.read(track, s, start, n, **read)
                if got is not None:
                    mix += _fix_length(got[0], out_len)
        return {"mixture": torch.from_numpy(mix), "target": torch.from_numpy(tgt)}


class StepSampler(Sampler[int]):
    """Example indices for steps ``[start_step, max_steps)`` of one rank: step ``s``, rank ``r`` of ``w``
    takes indices ``(s * w + r) * batch + [0, batch)``, so a resumed run sees the examples it would have seen.

    ``start_step`` may be a function that gives the trainer's step: it is then read each time iteration
    starts. A run resumed in the middle of an epoch ends that epoch early (the trainer counts the batches
    it ran before the interruption); the next epoch then goes on from the step reached, not from the step
    the run was resumed at."""

    def __init__(
        self, start_step: int | Callable[[], int], max_steps: int, batch_size: int, *, rank: int = 0, world: int = 1
    ):
        self.start, self.stop, self.batch, self.rank, self.world = start_step, max_steps, batch_size, rank, world

    def _first(self) -> int:
        return int(self.start()) if callable(self.start) else int(self.start)

    def __iter__(self):
        for s in range(self._first(), self.stop):
            base = (s * self.world + self.rank) * self.batch
            yield from range(base, base + self.batch)

    def __len__(self) -> int:
        return max(0, self.stop - self._first()) * self.batch


def manifest_tracks(manifest: Manifest) -> list[str]:
    """Track names of a manifest, sorted."""
    return sorted(pd.unique(manifest.frame["track"]))
