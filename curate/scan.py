"""``curate scan``: check every file, run SAD on every stem, write the manifest.

Resumable: each finished track is kept in ``<manifest>.parts/`` (fragments as Parquet, problems
as JSON) and not recomputed by a later run with the same settings; the manifest and its
``.problems.parquet`` appear atomically at the end, and the parts folder is then removed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from curate.atomic import atomic_path, ensure_writable_dir
from curate.checks import CheckConfig, Problem, check_track
from curate.datasets import DEFAULT_STEMS, MIXTURE, Track, available_stems, discover
from curate.errors import StemcurateError
from curate.schema import MANIFEST_VERSION, REQUIRED_COLUMNS, empty_frame, empty_problems, problems_path, write_manifest, write_problems
from sad import SADConfig, detect


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


def fragment_rows(track: Track, stem: str, audio: np.ndarray, sample_rate: int, sad_config: SADConfig) -> list[dict]:
    """Manifest rows for the salient fragments of one stem ``audio`` ``(channels, samples)``."""
    bounds = detect(audio, sample_rate, sad_config)
    rel = track.source(stem).relative_to(track.root)
    rows = []
    for start, end in bounds:
        seg = audio[:, start:end].astype(np.float64)
        ms = float(np.mean(seg**2)) if seg.size else 0.0
        rows.append(
            dict(
                track=track.name, subset=track.subset, stem=stem, path=rel,
                start=int(start), end=int(end), sample_rate=int(sample_rate), channels=int(audio.shape[0]),
                rms_db=float(10 * np.log10(max(ms, 1e-20))),
            )
        )
    return rows


def scan_track(track: Track, stems: list[str], *, sad_config: SADConfig = SADConfig(), check_config: CheckConfig = CheckConfig()) -> tuple[list[dict], list[Problem], float | None]:
    """Check one track and detect the salient fragments of its requested stems."""
    checked = check_track(track, stems, check_config)
    rows = []
    for stem in stems:
        if stem in checked.audio and stem != MIXTURE:
            rows.extend(fragment_rows(track, stem, checked.audio[stem], checked.sample_rate, sad_config))
    return rows, checked.problems, checked.residual_db


def _part_key(track: Track) -> str:
    return hashlib.sha1(f"{track.subset}/{track.name}".encode()).hexdigest()[:16]


def _fingerprint(root: Path, subset: str, stems: list[str], sad_config: SADConfig, check_config: CheckConfig) -> dict:
    return {
        "version": MANIFEST_VERSION, "root": str(root.resolve()), "subset": subset, "stems": stems,
        "sad": sad_config.to_dict(), "checks": check_config.to_dict(),
    }


def _prepare_parts(parts: Path, fingerprint: dict) -> None:
    stamp = parts / "scan.json"
    if parts.is_dir():
        try:
            same = json.loads(stamp.read_text()) == fingerprint
        except (OSError, ValueError):
            same = False
        if not same:
            shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    if not stamp.exists():
        stamp.write_text(json.dumps(fingerprint))


def _load_part(parts: Path, key: str):
    frag_file, prob_file = parts / f"{key}.parquet", parts / f"{key}.json"
    if not (frag_file.exists() and prob_file.exists()):
        return None
    try:
        done = json.loads(prob_file.read_text())
        frame = pd.read_parquet(frag_file)
    except (OSError, ValueError):
        return None
    return frame, [Problem(**p) for p in done["problems"]], done["residual_db"]


def _save_part(parts: Path, key: str, rows: list[dict], problems: list[Problem], residual: float | None) -> None:
    with atomic_path(parts / f"{key}.json") as tmp:
        tmp.write_text(json.dumps({"problems": [asdict(p) for p in problems], "residual_db": residual}))
    frame = pd.DataFrame(rows, columns=REQUIRED_COLUMNS)
    with atomic_path(parts / f"{key}.parquet") as tmp:  # written last: its presence marks the track done
        frame.to_parquet(tmp, index=False)


def resolve_stems(tracks: list[Track], stems: list[str] | None, root: Path) -> list[str]:
    """Validate requested stem names against the files found; default: vocals, bass, drums, other."""
    present = available_stems(tracks)
    stems = list(DEFAULT_STEMS) if stems is None else list(dict.fromkeys(stems))
    if not stems:
        raise StemcurateError("--stems: no stem names given")
    for s in stems:
        if s == MIXTURE:
            raise StemcurateError("--stems: 'mixture' is not a stem")
        if s not in present:
            raise StemcurateError(f"unknown stem '{s}': tracks under {root} have {', '.join(present) or 'no stems'}")
    return stems


def write_txt_lists(frame: pd.DataFrame, txt_dir: Path, subset: str, stems: list[str]) -> list[Path]:
    """Seed-compatible ``{stem}_{subset}.txt`` files: ``{track}\\t{start}\\t{end}`` per fragment."""
    out = []
    for stem in stems:
        path = Path(txt_dir) / f"{stem}_{subset}.txt"
        sel = frame[frame["stem"] == stem]
        with atomic_path(path) as tmp:
            tmp.write_text("".join(f"{r.track}\t{r.start}\t{r.end}\n" for r in sel.itertuples()))
        out.append(path)
    return out


def scan(
    root: str | Path | None,
    *,
    output: str | Path = "manifest.parquet",
    subset: str = "train",
    stems: list[str] | None = None,
    sad_config: SADConfig = SADConfig(),
    check_config: CheckConfig = CheckConfig(),
    txt_dir: str | Path | None = None,
    on_start: Callable[[int], None] | None = None,
    on_track: Callable[[Track], None] | None = None,
) -> ScanResult:
    """Scan ``subset`` of the dataset at ``root`` and write the manifest to ``output``.

    ``on_start(n_tracks)`` and ``on_track(track)`` report progress. Raises
    :class:`StemcurateError` for bad input (missing/empty root, no tracks, unknown stems,
    unwritable output).
    """
    output = Path(output)
    ensure_writable_dir(output)
    tracks = discover(root, subset=subset)
    root = tracks[0].root
    stems = resolve_stems(tracks, stems, root)
    parts = output.with_name(output.name + ".parts")
    _prepare_parts(parts, _fingerprint(root, subset, stems, sad_config, check_config))
    if on_start:
        on_start(len(tracks))

    frames, problems, residuals, resumed = [], [], {}, 0
    for track in tracks:
        key = _part_key(track)
        part = _load_part(parts, key)
        if part is None:
            rows, probs, res = scan_track(track, stems, sad_config=sad_config, check_config=check_config)
            _save_part(parts, key, rows, probs, res)
            frame = pd.DataFrame(rows)
        else:
            frame, probs, res = part
            resumed += 1
        if len(frame):
            frames.append(frame)
        problems.extend(probs)
        residuals[track.name] = res
        if on_track:
            on_track(track)

    fragments = pd.concat(frames, ignore_index=True) if frames else empty_frame()
    for col in empty_frame().columns:
        if col not in fragments.columns:
            fragments[col] = None
    fragments = fragments.sort_values(["track", "stem", "start"], kind="stable").reset_index(drop=True)
    problem_frame = pd.DataFrame([asdict(p) for p in problems]) if problems else empty_problems()
    meta = {
        "subset": subset, "stems": stems, "sad": sad_config.to_dict(), "checks": check_config.to_dict(),
        "tracks": len(tracks), "residual_db": {k: (None if v is None or not np.isfinite(v) else round(v, 2)) for k, v in residuals.items()},
    }
    prob_path = problems_path(output)
    write_problems(problem_frame, prob_path)
    write_manifest(fragments, output, root=root, meta=meta)
    if txt_dir is not None:
        write_txt_lists(fragments, Path(txt_dir), subset, stems)
    shutil.rmtree(parts, ignore_errors=True)
    return ScanResult(output, prob_path, fragments, problem_frame, len(tracks), stems, resumed, residuals)
