"""The ``panns`` embedder: PANNs Cnn14 (Kong et al. 2020) from ``panns_inference``, offline.

The checkpoint (``Cnn14_mAP=0.431.pth``) is a file the user downloaded; it is loaded with
``torch.load(..., weights_only=True)`` into ``panns_inference.models.Cnn14`` (the package's own
``AudioTagging`` wrapper would unpickle it and try to download missing files). Fragments are
mixed to mono and resampled to 32 kHz with soxr. ``panns_inference`` reads the AudioSet label
CSV from ``~/panns_data`` when imported and downloads it when missing; the copy shipped in
``curate/assets`` is put there first (or ``HOME`` points at a private copy during the import).

AudioSet classes map to stems as in :data:`STEM_CLASSES` (a stem's score is the largest
probability among its classes).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import soxr
import torch

from bsrnn.checkpoint import load_file
from bsrnn.errors import CheckpointError
from curate import ASSETS
from curate.common.errors import StemcurateError
from curate.scoring.spectra import StemSpectrum

PANNS_RATE = 32000
LABELS_CSV = ASSETS / "class_labels_indices.csv"
STEM_CLASSES = {
    "vocals": [
        "Speech",
        "Singing",
        "Choir",
        "Male singing",
        "Female singing",
        "Child singing",
        "Synthetic singing",
        "Rapping",
        "Humming",
        "Yodeling",
        "Chant",
        "Vocal music",
        "A capella",
        "Beatboxing",
    ],
    "bass": ["Bass guitar", "Double bass"],
    "drums": [
        "Drum kit",
        "Drum machine",
        "Drum",
        "Snare drum",
        "Rimshot",
        "Drum roll",
        "Bass drum",
        "Cymbal",
        "Hi-hat",
        "Percussion",
        "Tabla",
        "Tambourine",
        "Wood block",
        "Maraca",
        "Timpani",
    ],
    "other": [
        "Guitar",
        "Electric guitar",
        "Acoustic guitar",
        "Keyboard (musical)",
        "Piano",
        "Electric piano",
        "Organ",
        "Electronic organ",
        "Hammond organ",
        "Synthesizer",
        "Brass instrument",
        "Trumpet",
        "Trombone",
        "French horn",
        "Bowed string instrument",
        "String section",
        "Violin, fiddle",
        "Cello",
        "Flute",
        "Saxophone",
        "Clarinet",
        "Harp",
        "Accordion",
        "Banjo",
        "Mandolin",
        "Ukulele",
        "Sitar",
        "Marimba, xylophone",
        "Vibraphone",
        "Glockenspiel",
    ],
}
"""AudioSet display names per stem; names missing from the label file are ignored."""


@contextlib.contextmanager
def _labels_in_place():
    """Make ``~/panns_data/class_labels_indices.csv`` exist for the import of ``panns_inference``."""
    target = Path.home() / "panns_data" / "class_labels_indices.csv"
    if target.is_file():
        yield
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(LABELS_CSV, target)
        yield
        return
    except OSError:
        pass
    with tempfile.TemporaryDirectory() as home:  # read-only home: point HOME at a private copy
        (Path(home) / "panns_data").mkdir()
        shutil.copyfile(LABELS_CSV, Path(home) / "panns_data" / "class_labels_indices.csv")
        old = os.environ.get("HOME")
        os.environ["HOME"] = home
        try:
            yield
        finally:
            if old is None:
                os.environ.pop("HOME", None)
            else:
                os.environ["HOME"] = old


def cnn14_class():
    """``panns_inference.models.Cnn14``, imported without network access."""
    with _labels_in_place():
        from panns_inference.models import Cnn14
    return Cnn14


def new_cnn14() -> torch.nn.Module:
    """A Cnn14 with the architecture of ``Cnn14_mAP=0.431.pth`` (32 kHz, 64 mels, 527 classes)."""
    return cnn14_class()(
        sample_rate=PANNS_RATE, window_size=1024, hop_size=320, mel_bins=64, fmin=50, fmax=14000, classes_num=527
    )


def audioset_labels() -> list[str]:
    """The 527 AudioSet display names in model output order (from the shipped CSV)."""
    import csv

    with open(LABELS_CSV, newline="") as fh:
        return [row[2] for row in list(csv.reader(fh))[1:]]


def load_cnn14(path: str | Path, device: str = "cpu") -> torch.nn.Module:
    """Cnn14 with the weights of checkpoint ``path`` (a dict with ``model``, or a bare state dict)."""
    path = Path(path)
    try:
        ckpt = load_file(path, what="PANNs checkpoint")
    except CheckpointError as exc:  # curation's own error type: a PANNs file is no BSRNN model
        raise StemcurateError(str(exc)) from None
    state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise StemcurateError(f"{path}: checkpoint holds no state dict")
    model = new_cnn14()
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0][:160]
        raise StemcurateError(f"{path}: not a Cnn14 checkpoint of the 0.431 mAP architecture ({first})") from None
    return model.to(device).eval()


class PannsEmbedder:
    """Cnn14 embeddings (2048) and AudioSet scores mapped to stems (4), per fragment."""

    name = "panns"

    def __init__(self, checkpoint: str | Path, *, device: str = "cpu", batch_size: int = 8):
        self.device = device
        self.model = load_cnn14(checkpoint, device)
        self.batch_size = batch_size
        names = audioset_labels()
        index = {n: i for i, n in enumerate(names)}
        self.stem_index = {s: [index[n] for n in cls if n in index] for s, cls in STEM_CLASSES.items()}

    @torch.no_grad()
    def run(self, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``clips`` ``(n, samples)`` mono at 32 kHz -> embeddings ``(n, 2048)``, class probabilities ``(n, 527)``."""
        embs, probs = [], []
        for i in range(0, len(clips), self.batch_size):
            x = torch.from_numpy(np.ascontiguousarray(clips[i : i + self.batch_size], dtype=np.float32)).to(self.device)
            out = self.model(x, None)
            embs.append(out["embedding"].float().cpu().numpy())
            probs.append(out["clipwise_output"].float().cpu().numpy())
        if not embs:
            return np.zeros((0, 2048), np.float32), np.zeros((0, 527), np.float32)
        return np.concatenate(embs), np.concatenate(probs)

    def stem_scores(self, probs: np.ndarray) -> np.ndarray:
        """``(n, 527)`` AudioSet probabilities -> ``(n, 4)`` per-stem scores (vocals, bass, drums, other)."""
        return np.stack(
            [probs[:, idx].max(axis=1) if idx else np.zeros(len(probs)) for idx in self.stem_index.values()], axis=1
        )

    def embed(self, audio: np.ndarray, spectrum: StemSpectrum, bounds: np.ndarray) -> np.ndarray:
        """``(n, 2048 + 4)``: embedding and log stem scores of each fragment ``[start, end)`` of ``audio``."""
        mono = audio.mean(axis=0)
        sr = spectrum.sample_rate
        clips = [soxr.resample(mono[a:b], sr, PANNS_RATE) if sr != PANNS_RATE else mono[a:b] for a, b in bounds]
        n = max((len(c) for c in clips), default=0)
        batch = np.stack([np.pad(c, (0, n - len(c))) for c in clips]) if clips else np.zeros((0, 0), np.float32)
        emb, probs = self.run(batch)
        return np.concatenate([emb, np.log(self.stem_scores(probs) + 1e-6)], axis=1).astype(np.float32)
