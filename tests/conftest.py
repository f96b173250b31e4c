"""Shared fixtures: small generated datasets and the real MUSDB18 excerpt from ../shared."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
MUSDB_SAMPLE = SHARED_DATA / "musdb18-sample"
MUSDBHQ_SAMPLE = SHARED_DATA / "musdb18hq-sample"


def need_ffmpeg():
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is required for the MUSDB18 .stem.mp4 tests (apt-get install -y ffmpeg)")


def need_shared():
    if not MUSDB_SAMPLE.is_dir() or not MUSDBHQ_SAMPLE.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA}")
    need_ffmpeg()


def write_track(
    folder: Path,
    stems: dict[str, np.ndarray],
    sr: int = 44100,
    subtype: str = "PCM_16",
    with_mixture: bool = True,
    ext: str = "wav",
) -> None:
    """Write ``{name: (channels, samples)}`` stems (and their exact-sum mixture) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, x in stems.items():
        sf.write(folder / f"{name}.{ext}", np.asarray(x).T, sr, subtype=subtype)
    if with_mixture:
        mix = sum(np.asarray(x, dtype=np.float64) for x in stems.values())
        sf.write(folder / f"mixture.{ext}", mix.T, sr, subtype="FLOAT" if subtype == "FLOAT" else subtype)


def noise_stems(
    rng, seconds: float = 7.0, sr: int = 44100, names=("vocals", "bass", "drums", "other")
) -> dict[str, np.ndarray]:
    """Independent quiet noise per stem, float32 (2, samples), safely below clipping when summed."""
    n = int(seconds * sr)
    return {k: (0.05 * rng.standard_normal((2, n))).astype(np.float32) for k in names}


def random_models(folder: Path, targets=("vocals", "bass")) -> Path:
    """Random tiny BSRNNs saved in the ``saved_models`` layout (``folder/<target>/<target>.ckpt``), seeded by
    position."""
    import torch

    from bsrnn.model import BSRNN, BSRNNConfig

    for i, t in enumerate(targets):
        torch.manual_seed(i)
        (folder / t).mkdir(parents=True, exist_ok=True)
        BSRNN(BSRNNConfig.preset("tiny", t)).save(folder / t / f"{t}.ckpt")
    return folder


def spectra_sums(recv, src):
    """Cross-spectrum, powers per bin and powers per bin and frame of two STFTs ``(channels, F, frames)``."""
    g = np.einsum("cft,cft->f", recv, np.conj(src))
    p_r, p_s = (np.einsum("cft,cft->f", x, np.conj(x)).real for x in (recv, src))
    pw_r, pw_s = (np.einsum("cft,cft->ft", x, np.conj(x)).real for x in (recv, src))
    return g, p_r, p_s, pw_r, pw_s


@pytest.fixture(autouse=True)
def _sigint_as_it_was():
    """The console entry points set their own Ctrl-C handling (and ignore it while the process ends): a test
    that runs one in this process must not leave the test session, or the commands it starts, deaf to Ctrl-C."""
    before = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.fixture(autouse=True, scope="session")
def _decode_cache(tmp_path_factory):
    """Decoded ``.stem.mp4`` files (:mod:`curate.data.decoded`) go to the session's temporary folder,
    not to the user's cache."""
    old = os.environ.get("STEMCURATE_CACHE")
    os.environ["STEMCURATE_CACHE"] = str(tmp_path_factory.mktemp("decoded"))
    yield
    if old is None:
        os.environ.pop("STEMCURATE_CACHE", None)
    else:
        os.environ["STEMCURATE_CACHE"] = old


def tiny_train(manifest, *extra, steps=2, batch=2, out=None, export_dir=None, valid=False) -> list[str]:
    """``pipelines train`` arguments of a short run of the tiny model on ``manifest``: ``steps`` steps of
    ``batch`` 1-s crops, without validation unless ``valid``, no progress bar, into the run folder ``out``
    and exporting to ``export_dir`` when given, then ``extra``."""
    args = ["train", "-m", str(manifest), "--model", "tiny", "--max-steps", str(steps), "-b", str(batch)]
    args += ["--set", "crop_s=1"] + ([] if valid else ["--set", "valid_fraction=0"]) + ["--no-progress"]
    args += (["-o", str(out)] if out is not None else []) + (
        [] if export_dir is None else ["--export-dir", str(export_dir)]
    )
    return args + [str(a) for a in extra]


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """A 3-track, 7-second ``curate synth`` dataset (train) plus one test track."""
    from curate.simulate.synth import synth_dataset

    root = tmp_path_factory.mktemp("synth")
    synth_dataset(root, tracks=3, test_tracks=1, seconds=7.0, seed=3)
    return root
