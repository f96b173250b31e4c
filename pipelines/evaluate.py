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

from bsrnn.model import BSRNN, CheckpointError, saved_model_files
from bsrnn.separator import Separator
from curate.atomic import atomic_path, write_text
from curate.datasets import discover, load_source
from curate.errors import StemcurateError
from pipelines.metrics import csdr_windows, usdr


def load_models(source: str | Path, targets: list[str] | None = None, *, device: str = "cpu") -> tuple[dict[str, BSRNN], Path | None]:
    """Models from an exported ``.ckpt``, a training run folder, or a ``saved_models``-style folder.

    Returns ``({target: model}, run folder or None)``; ``targets`` picks among them.
    """
    from pipelines.train import CONFIG_FILE, load_model_weights

    source = Path(source)
    run_dir = None
    if source.is_file():
        files = [source]
    elif (source / CONFIG_FILE).is_file():
        run_dir = source
        exported = source / "checkpoints" / "best.ckpt"
        if not exported.is_file():
            exported = source / "checkpoints" / "last.ckpt"
        files = [exported]
    elif source.is_dir():
        files = saved_model_files(source)
        if not files:
            raise StemcurateError(f"{source}: no checkpoint, run folder or <target>/<target>.ckpt models here")
    else:
        raise StemcurateError(f"{source}: no such checkpoint or folder")
    models: dict[str, BSRNN] = {}
    for f in files:
        try:
            cfg, state = load_model_weights(f)
            model = BSRNN(cfg)
            model.load_state_dict(state)
        except (CheckpointError, RuntimeError) as exc:
            raise StemcurateError(f"{f}: {str(exc).splitlines()[0][:200]}") from None
        models[cfg.target] = model.to(device).eval()
    if targets:
        missing = [t for t in targets if t not in models]
        if missing:
            raise StemcurateError(f"{source}: no model for {', '.join(missing)} (has {', '.join(models)})")
        models = {t: models[t] for t in targets}
    return models, run_dir


def evaluate(
    models: dict[str, BSRNN], data_root: str | Path, *, subset: str = "test", tracks: int | None = None,
    device: str = "cpu", frame_s: float = 3.0, hop_s: float = 2.5, on_track: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """One row per track and target: ``track, target, usdr, csdr, windows, seconds`` (dB, s)."""
    found = discover(data_root, subset=subset)
    if tracks is not None:
        found = found[:tracks]
    seps = {t: Separator(m, sample_rate=m.config.sample_rate, frame_s=frame_s, hop_s=hop_s, device=device) for t, m in models.items()}
    rows = []
    for track in found:
        if on_track:
            on_track(track.name)
        missing = [t for t in models if t not in track.stems]
        if missing:
            raise StemcurateError(f"track '{track.name}': no {', '.join(missing)} stem to compare with")
        loaded = {t: load_source(track.stems[t]) for t in models}
        refs = {t: audio for t, (audio, _) in loaded.items()}
        rate = next(iter(loaded.values()))[1]
        wrong = [t for t, m in models.items() if m.config.sample_rate != rate]
        if wrong:
            raise StemcurateError(f"track '{track.name}': {rate} Hz, the {wrong[0]} model expects {models[wrong[0]].config.sample_rate} Hz")
        if track.mixture is not None:
            mix = load_source(track.mixture)[0]
        else:
            mix = sum(load_source(s)[0] for s in track.stems.values())
        t0 = time.perf_counter()
        ests = {t: sep.separate(mix).numpy() for t, sep in seps.items()}
        seconds = time.perf_counter() - t0
        n = min(mix.shape[1], *(r.shape[1] for r in refs.values()))
        ref = np.stack([refs[t][:, :n].T for t in models])
        est = np.stack([ests[t][:, :n].T for t in models])
        windows = csdr_windows(ref, est, win=rate, hop=rate)
        track_usdr = usdr(torch.from_numpy(ref), torch.from_numpy(est))  # (targets,)
        for j, t in enumerate(models):
            ok = windows[j][~np.isnan(windows[j])]
            rows.append(dict(track=track.name, target=t, usdr=float(track_usdr[j]), csdr=float(np.median(ok)) if ok.size else float("nan"),
                             windows=int(ok.size), seconds=seconds / len(models)))
    return pd.DataFrame(rows, columns=["track", "target", "usdr", "csdr", "windows", "seconds"])


def summary_table(results: pd.DataFrame) -> str:
    """Per target: tracks, uSDR mean ± std, cSDR median (over tracks), as aligned text."""
    lines = [f"{'target':<10}{'tracks':>7}{'uSDR mean ± std':>20}{'cSDR median':>14}"]
    for target, g in results.groupby("target", sort=False):
        std = g["usdr"].std(ddof=0) if len(g) > 1 else 0.0
        lines.append(f"{target:<10}{len(g):>7}{g['usdr'].mean():>12.2f} ± {std:<5.2f}{np.nanmedian(g['csdr']) if g['csdr'].notna().any() else float('nan'):>14.2f}")
    return "\n".join(lines)


def write_results(results: pd.DataFrame, path: str | Path, *, header: str = "") -> tuple[Path, Path]:
    """Write the per-track results (Parquet) and ``test.log`` beside them, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        results.to_parquet(tmp, index=False)
    log = path.parent / "test.log"
    body = [header, summary_table(results), "", "per track:"]
    body += [f"{r.track:<30}{r.target:<10} uSDR {r.usdr:7.2f}  cSDR {r.csdr:7.2f}" for r in results.itertuples()]
    write_text(log, "\n".join(b for b in body if b is not None) + "\n")
    return path, log


def default_data_root(run_dir: Path | None) -> Path | None:
    """The data root of a run's manifest (its test subset sits beside the train subset)."""
    if run_dir is None:
        return None
    from curate.schema import read_manifest
    from pipelines.train import load_run_config

    try:
        manifest = load_run_config(run_dir)[2]["manifest"]
        return read_manifest(manifest).root
    except StemcurateError:
        return None

