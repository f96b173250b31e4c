"""Interop benchmark: other trainers' own dataset code on the folders ``curate export`` writes.

Two datasets, each scanned and exported at the default threshold (0.7) with a validation split: the real
MUSDB18 excerpts of ../shared/data/musdb18-7s/train (``--real-tracks``, default all 94; MUSDB18's own
validation tracks are the validation split) and a ``curate synth`` set (``--synth-tracks``, two of them
drawn as validation). Exports: ``wav`` (the default: the source's depth, ``valid/`` folder), ``flac``,
``vocals+other`` (``--two-stems vocals``), ``csv`` (``--format msst-csv``) and, for the real songs,
``musdb-valid`` (``--valid-layout musdb``).

Readers, each its own code, run as its users run it:

* ``MSST type 1/4``: Music-Source-Separation-Training's ``train.py`` (a checkout given by ``--msst``)
  with ``--dataset_type 1`` or ``4``, a small bs_roformer, 3 CPU training steps, then its validation on
  ``valid/`` (``--valid_path``); ``MSST type 3`` the same on ``train.csv`` (validating on the ``wav``
  export's ``valid/``: MSST validates on folders only). train: the 3 steps ran with finite losses;
  valid: a finite SDR of the target (vocals).
* ``open-unmix musdb/aligned/trackfolder_fix``: ``openunmix.data.load_datasets`` (1.3.0) as its
  ``scripts/train.py`` calls it, then 3 training steps of a small OpenUnmix on its train batches and its
  loss on one validation batch.
* ``demucs wav/musdb``: ``demucs.wav.get_wav_datasets`` / ``get_musdb_wav_datasets`` (4.1.0) build the
  train and validation sets; one item of each is read.
* ``musdb``: ``musdb.DB(is_wav=True)`` reads every track; every target has the mixture's shape.

Peers that import modules this machine has no build for (torchaudio) or that the benchmark does not use
(wandb, dora, augmentation and loss libraries) run on stand-ins (:mod:`bench.standins`). The MSST
checkout is run in a subprocess, never imported into this process; its validation metric passes a
1-element array to ``float()``, an error from NumPy 2.4 on, so ``train.py`` runs through a driver that
makes that array 0-d (nothing else changes).

Usage: python bench/interop.py --msst PATH [--real-tracks 94] [--synth-tracks 8] [--keep DIR] [--save]
Prints a table reader x dataset x export x split (PASS/FAIL with the error), then one JSON line
``{"passed", "failed", "not_applicable", ...}``.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO, finish  # noqa: E402
from bench.standins import stand_in_dir, use_stand_ins  # noqa: E402
from curate.export import ExportConfig, export  # noqa: E402
from curate.scan import scan  # noqa: E402
from curate.simulate.synth import synth_dataset  # noqa: E402

REAL = REPO.parent / "shared" / "data" / "musdb18-7s" / "train"
STEMS = ("vocals", "bass", "drums", "other")
NA = "n/a"


def prepare(work: Path, real_tracks: int, synth_tracks: int) -> dict[str, Path]:
    """Scanned manifests of the real excerpts (linked, not copied) and of a synth set."""
    songs = work / "real" / "train"
    songs.mkdir(parents=True)
    for p in sorted(REAL.glob("*.stem.mp4"))[:real_tracks]:
        (songs / p.name).symlink_to(p)
    scan(work / "real", output=work / "real.parquet", jobs=2)
    synth_dataset(work / "synth", tracks=synth_tracks, seconds=10, seed=0)
    scan(work / "synth", output=work / "synth.parquet", jobs=2)
    return {"real": work / "real.parquet", "synth": work / "synth.parquet"}


def exports(manifest: Path, work: Path, name: str) -> dict[str, Path]:
    valid = {} if name == "real" else {"valid_tracks": 2}
    configs = {
        "wav": ExportConfig(**valid),
        "flac": ExportConfig(audio_format="flac", **valid),
        "vocals+other": ExportConfig(two_stems="vocals", **valid),
        "csv": ExportConfig(format="msst-csv", **valid),
    }
    if name == "real":
        configs["musdb-valid"] = ExportConfig(valid_layout="musdb")
    out = {}
    for key, config in configs.items():
        out[key] = work / f"{name}-{key.replace('+', '_')}"
        export(manifest, out[key], config=config)
    return out


MSST_CONFIG = """audio:
  chunk_size: 88200
  dim_f: 1024
  dim_t: 256
  hop_length: 512
  n_fft: 2048
  num_channels: 2
  sample_rate: 44100
  min_mean_abs: 0.0
model:
  dim: 16
  depth: 1
  stereo: true
  num_stems: 1
  time_transformer_depth: 1
  freq_transformer_depth: 1
  linear_transformer_depth: 0
  freqs_per_bands: !!python/tuple [{bands}]
  dim_head: 8
  heads: 2
  attn_dropout: 0.0
  ff_dropout: 0.0
  flash_attn: false
  dim_freqs_in: 1025
  stft_n_fft: 2048
  stft_hop_length: 512
  stft_win_length: 2048
  stft_normalized: false
  mask_estimator_depth: 1
  multi_stft_resolution_loss_weight: 1.0
  multi_stft_resolutions_window_sizes: !!python/tuple [2048, 1024]
  multi_stft_hop_size: 147
  multi_stft_normalized: false
  mlp_expansion_factor: 1
  use_torch_checkpoint: false
  skip_connection: false
training:
  batch_size: 2
  gradient_accumulation_steps: 1
  grad_clip: 0
  instruments: [{instruments}]
  lr: 5.0e-05
  patience: 2
  reduce_factor: 0.95
  target_instrument: vocals
  num_epochs: 1
  num_steps: 3
  q: 0.95
  coarse_loss_clip: true
  ema_momentum: 0
  optimizer: adam
  other_fix: false
  use_amp: false
augmentations:
  enable: false
inference:
  batch_size: 1
  dim_t: 256
  num_overlap: 1
"""


MSST_DRIVER = '''"""MSST's train.py, run as ``python train.py ARGS`` runs it, with one shim: its validation passes
the 1-element array ``utils.metrics.sdr`` returns to ``float()``, an error from NumPy 2.4 on; the shim
returns that element (a 0-d array) instead."""

import runpy
import sys

import numpy as np

import utils.metrics as metrics

_sdr = metrics.sdr


def sdr(references, estimates):
    out = np.asarray(_sdr(references, estimates))
    return out.reshape(()) if out.size == 1 else out


metrics.sdr = sdr
sys.argv = ["train.py", *sys.argv[1:]]
runpy.run_path("train.py", run_name="__main__")
'''


def msst(checkout: Path, work: Path, data: str, valid: Path, dataset_type: int, instruments) -> dict[str, str]:
    """MSST's train.py: 3 steps on ``data`` and its validation on ``valid``; ``{split: status}``."""
    run = Path(tempfile.mkdtemp(prefix="msst-", dir=work))
    config = run / "config.yaml"
    bands = ", ".join(map(str, [2] * 24 + [4] * 12 + [12] * 8 + [24] * 8 + [48] * 8 + [128, 129]))
    config.write_text(MSST_CONFIG.format(bands=bands, instruments=", ".join(instruments)))
    stand_ins = work / "stand-ins"
    stand_in_dir(stand_ins)
    env = {**os.environ, "PYTHONPATH": f"{stand_ins}{os.pathsep}{checkout}", "CUDA_VISIBLE_DEVICES": ""}
    (stand_ins / "msst_train.py").write_text(MSST_DRIVER)
    cmd = [
        sys.executable,
        str(stand_ins / "msst_train.py"),
        "--model_type",
        "bs_roformer",
        "--config_path",
        str(config),
    ]
    cmd += ["--results_path", str(run / "results"), "--data_path", data, "--valid_path", str(valid)]
    cmd += ["--dataset_type", str(dataset_type), "--num_workers", "0", "--seed", "0", "--metrics", "sdr"]
    proc = subprocess.run(cmd, cwd=checkout, env=env, capture_output=True, text=True, timeout=1800)
    log = proc.stdout + proc.stderr
    (run / "log.txt").write_text(log)
    if proc.returncode != 0:
        last = [line for line in log.splitlines() if line.strip()][-1:] or ["no output"]
        return {"train": f"FAIL exit {proc.returncode}: {last[0][:160]}", "valid": "FAIL (no run)"}
    losses = [float(x) for x in re.findall(r"[Tt]raining loss: ([-\d.eE+naif]+)", log)]
    sdr = {i: float(v) for i, v in re.findall(r"Instr (\w+) sdr: ([-\d.eE+naif]+)", log)}
    train = (
        "PASS" if losses and all(math.isfinite(x) for x in losses) else f"FAIL training loss {losses or 'not printed'}"
    )
    ok = set(sdr) == {"vocals"} and all(math.isfinite(v) for v in sdr.values())  # the config's target_instrument
    return {"train": train, "valid": "PASS" if ok else f"FAIL validation SDR {sdr or 'not printed'}"}


def openunmix(argv: list[str], work: Path) -> dict[str, str]:
    """open-unmix's load_datasets with its train.py's arguments, 3 training steps and one validation batch."""
    import torch

    use_stand_ins(work / "stand-ins", ("torchaudio",))
    from openunmix import data, model, transforms

    parser = argparse.ArgumentParser("train.py")  # the arguments of open-unmix's scripts/train.py that its data reads
    parser.add_argument("--target", type=str, default="vocals")
    parser.add_argument("--dataset", type=str, default="musdb")
    parser.add_argument("--root", type=str)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--seq-dur", type=float, default=2.0)
    parser.add_argument("--nb-channels", type=int, default=2)
    old = sys.argv
    sys.argv = ["train.py", *argv]
    try:
        args, _ = parser.parse_known_args()
        train_set, valid_set, args = data.load_datasets(parser, args)
    finally:
        sys.argv = old
    stft, _ = transforms.make_filterbanks(n_fft=1024, n_hop=256, sample_rate=44100.0)
    encoder = torch.nn.Sequential(stft, transforms.ComplexNorm(mono=False))
    unmix = model.OpenUnmix(nb_bins=513, nb_channels=2, hidden_size=32, nb_layers=1)
    optimiser = torch.optim.Adam(unmix.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(train_set, batch_size=2, shuffle=True)
    losses = []
    batches = (b for _ in range(3) for b in loader)  # epochs of a small set are shorter than 3 batches
    for _, (x, y) in zip(range(3), batches):
        optimiser.zero_grad()
        loss = torch.nn.functional.mse_loss(unmix(encoder(x)), encoder(y))
        loss.backward()
        optimiser.step()
        losses.append(float(loss))
    out = {"train": "PASS" if len(losses) == 3 and all(map(math.isfinite, losses)) else f"FAIL losses {losses}"}
    if len(valid_set) == 0:
        out["valid"] = "FAIL no validation track"
        return out
    x, y = valid_set[0]
    with torch.no_grad():
        v = float(torch.nn.functional.mse_loss(unmix(encoder(x[None])), encoder(y[None])))
    out["valid"] = "PASS" if math.isfinite(v) and x.shape == y.shape else f"FAIL loss {v}, shapes {x.shape} {y.shape}"
    return out


def demucs(root: Path, work: Path, kind: str) -> dict[str, str]:
    """demucs' wav datasets (``wav``: train/ and valid/; ``musdb``: MUSDB18's validation names in train/)."""
    use_stand_ins(work / "stand-ins", ("torchaudio",))
    from demucs import wav

    meta = Path(tempfile.mkdtemp(prefix="demucs-meta-", dir=work))
    args = argparse.Namespace(
        wav=str(root), musdb=str(root), metadata=str(meta), sources=list(STEMS), segment=2.0, shift=1.0,
        samplerate=44100, channels=2, normalize=True, full_cv=True, train_valid=False,
    )  # fmt: skip
    train_set, valid_set = (wav.get_wav_datasets if kind == "wav" else wav.get_musdb_wav_datasets)(args)
    out = {}
    for split, dataset, n in (("train", train_set, len(STEMS)), ("valid", valid_set, len(STEMS) + 1)):
        if len(dataset) == 0:
            out[split] = "FAIL empty set"
            continue
        item = dataset[0]
        ok = item.shape[0] == n and bool(np.isfinite(item.numpy()).all())
        out[split] = "PASS" if ok else f"FAIL item shape {tuple(item.shape)}"
    return out


def musdb_db(root: Path, splits) -> dict[str, str]:
    """musdb.DB(is_wav=True): every track read, every target of the mixture's shape."""
    import musdb

    out = {}
    for split in splits:
        db = musdb.DB(root=str(root), is_wav=True, subsets="train", split=None if split == "train*" else split)
        bad = [t.name for t in db if any(tg.audio.shape != t.audio.shape for tg in t.targets.values())]
        out[split.rstrip("*")] = "FAIL no track" if not len(db) else (f"FAIL shapes: {bad[0]}" if bad else "PASS")
    return out


def attempt(fn, *args) -> dict[str, str]:
    try:
        return fn(*args)
    except BaseException as exc:  # a peer's failure is a result, not the benchmark's
        if isinstance(exc, KeyboardInterrupt):
            raise
        text = f"FAIL {type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
        return {"train": text, "valid": text}


def run_readers(name: str, out: dict[str, Path], checkout: Path | None, work: Path) -> list[dict]:
    rows = []

    def add(reader, export_name, result):
        for split, status in result.items():
            rows.append(dict(reader=reader, dataset=name, export=export_name, split=split, status=status))
            print(f"{reader:26s} {name:6s} {export_name:13s} {split:6s} {status}", flush=True)

    add("musdb", "wav", attempt(musdb_db, out["wav"], ["train*"]))
    if "musdb-valid" in out:
        add("musdb", "musdb-valid", attempt(musdb_db, out["musdb-valid"], ["train", "valid"]))
    for export_name in ("wav", "flac", "vocals+other"):
        inst = ("vocals", "other") if export_name == "vocals+other" else STEMS
        for t in (1, 4) if export_name != "vocals+other" else (1,):
            if checkout is None:
                add(f"MSST type {t}", export_name, {"train": NA + " (no --msst)", "valid": NA + " (no --msst)"})
                continue
            root = out[export_name]
            add(
                f"MSST type {t}",
                export_name,
                attempt(msst, checkout, work, str(root / "train"), root / "valid", t, inst),
            )
    if checkout is not None:
        csv = out["csv"]
        add("MSST type 3", "csv", attempt(msst, checkout, work, str(csv / "train.csv"), out["wav"] / "valid", 3, STEMS))
    if "musdb-valid" in out:
        args = ["--dataset", "musdb", "--root", str(out["musdb-valid"]), "--is-wav", "--source-augmentations", "gain"]
        add("open-unmix musdb", "musdb-valid", attempt(openunmix, args, work))
    else:  # train/ read by musdb's split; its validation split holds MUSDB18's validation tracks only
        args = ["--dataset", "musdb", "--root", str(out["wav"]), "--is-wav", "--source-augmentations", "gain"]
        result = attempt(openunmix, args, work)
        if result.get("valid") == "FAIL no validation track":
            result["valid"] = NA + " (musdb readers validate on MUSDB18's validation tracks only)"
        add("open-unmix musdb", "wav", result)
    args = [
        "--dataset",
        "aligned",
        "--root",
        str(out["wav"]),
        "--input-file",
        "mixture.wav",
        "--output-file",
        "vocals.wav",
    ]
    add("open-unmix aligned", "wav", attempt(openunmix, args, work))
    args = ["--dataset", "trackfolder_fix", "--root", str(out["wav"]), "--target-file", "vocals.wav"]
    args += ["--interferer-files", "bass.wav", "drums.wav", "other.wav"]
    add("open-unmix trackfolder_fix", "wav", attempt(openunmix, args, work))
    add("demucs wav", "wav", attempt(demucs, out["wav"], work, "wav"))
    if "musdb-valid" in out:
        add("demucs musdb", "musdb-valid", attempt(demucs, out["musdb-valid"], work, "musdb"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--msst", type=Path, default=None, help="A Music-Source-Separation-Training checkout.")
    ap.add_argument("--real-tracks", type=int, default=94)
    ap.add_argument("--synth-tracks", type=int, default=8)
    ap.add_argument("--keep", type=Path, default=None, help="Work folder to keep (default: a temporary one).")
    ap.add_argument("--save", action="store_true")
    a = ap.parse_args()
    if a.msst is not None and not (a.msst / "train.py").is_file():
        raise SystemExit(f"--msst {a.msst}: no train.py there (give a Music-Source-Separation-Training checkout)")
    work = a.keep or Path(tempfile.mkdtemp(prefix="interop-"))
    if a.keep is not None and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    start = time.monotonic()
    rows = []
    try:
        manifests = prepare(work, a.real_tracks, a.synth_tracks)
        for name, manifest in manifests.items():
            rows += run_readers(name, exports(manifest, work, name), a.msst, work)
    finally:
        if a.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    passed = sum(r["status"] == "PASS" for r in rows)
    na = sum(r["status"].startswith(NA) for r in rows)
    failed = len(rows) - passed - na
    print()
    print(f"{'reader':26s} {'dataset':7s} {'export':13s} {'split':6s} status")
    for r in rows:
        print(f"{r['reader']:26s} {r['dataset']:7s} {r['export']:13s} {r['split']:6s} {r['status']}")
    figures = dict(
        passed=passed, failed=failed, not_applicable=na, rows=rows, real_tracks=a.real_tracks,
        synth_tracks=a.synth_tracks, msst=a.msst is not None, seconds=round(time.monotonic() - start, 1),
    )  # fmt: skip
    finish("interop", figures, a.save)


if __name__ == "__main__":
    main()
