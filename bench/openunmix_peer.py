"""open-unmix's trainer as a benchmark peer: its model, loss, optimiser, statistics and data recipe
(``scripts/train.py`` and ``openunmix/data.py`` of sigsep/open-unmix-pytorch 1.3.0), run on songs held in
memory for a wall-clock budget.

What follows the recipe: ``OpenUnmix`` (hidden 512, 3 BLSTM layers, bandwidth 16 kHz) on the magnitude of
a 4096/1024 STFT (``center=False``), input mean and scale from a ``StandardScaler`` over the training
mixtures (mono magnitude, std floored at 1e-4 of its largest value), MSE between the estimated and the
target magnitude, Adam lr 1e-3 with weight decay 1e-5, ``ReduceLROnPlateau`` (factor 0.3, patience 80,
cooldown 10) stepped on the validation loss after every epoch of 64 random excerpts per track; an
excerpt is one chunk of ``seq_dur`` seconds at a random start, the same start for every source, each
source scaled by a uniform gain in [0.25, 1.25] and its channels swapped with probability 0.5, the
mixture the sum of the sources. Separation: the estimated magnitude with the mixture's phase (no Wiener
filter), as ``umx --niter 0`` with one target gives without the residual.

Needs ``openunmix`` 1.3.0 without its dependencies (``pip install --no-deps openunmix==1.3.0``: it asks
for torchaudio, which has no build for this torch); it imports torchaudio at load time only, so a
stand-in module that reads audio with soundfile is put in its place.
"""

from __future__ import annotations

import copy
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.standins import use_stand_ins  # noqa: E402


def import_openunmix():
    """``(openunmix.model, openunmix.transforms, openunmix.utils)``; SystemExit with the install line when missing."""
    use_stand_ins(Path(tempfile.gettempdir()) / "stemcurate-stand-ins", ("torchaudio",))
    try:
        from openunmix import model, transforms, utils
    except ImportError:
        raise SystemExit("openunmix is not installed: .venv/bin/pip install --no-deps openunmix==1.3.0") from None
    return model, transforms, utils


class Songs:
    """Stems of some songs in memory: ``{name: {stem: (channels, samples) float32}}`` at one rate."""

    def __init__(self, songs: dict[str, dict[str, np.ndarray]], rate: int, target: str):
        self.songs, self.rate, self.target = songs, rate, target
        self.names = sorted(songs)

    def sources(self, name: str) -> list[str]:
        return [s for s in self.songs[name] if s != "mixture"]


class UMXTrainer:
    """open-unmix's training recipe (module docstring) for one target; ``run(budgets_s, on_budget)``."""

    def __init__(
        self,
        train: Songs,
        valid: Songs,
        *,
        seed: int = 42,
        batch_size: int = 16,
        seq_dur: float = 6.0,
        samples_per_track: int = 64,
        hidden_size: int = 512,
        device: str = "cpu",
    ):
        model, transforms, utils = import_openunmix()
        self.train, self.valid = train, valid
        self.batch, self.samples_per_track, self.device = batch_size, samples_per_track, device
        self.seq = int(round(seq_dur * train.rate))
        torch.manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        stft, _ = transforms.make_filterbanks(n_fft=4096, n_hop=1024, sample_rate=train.rate)
        self.encoder = torch.nn.Sequential(stft, transforms.ComplexNorm(mono=False)).to(device)
        mean, scale = self._statistics()
        self.unmix = model.OpenUnmix(
            input_mean=mean,
            input_scale=scale,
            nb_bins=4096 // 2 + 1,
            nb_channels=2,
            hidden_size=hidden_size,
            max_bin=int(utils.bandwidth_to_max_bin(train.rate, 4096, 16000)),
        ).to(device)
        self.opt = torch.optim.Adam(self.unmix.parameters(), lr=1e-3, weight_decay=1e-5)
        self.sched = torch.optim.lr_scheduler.ReduceLROnPlateau(self.opt, factor=0.3, patience=80, cooldown=10)
        self.steps = self.examples = 0

    def _statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """The recipe's ``get_statistics``: per-bin mean and std of the mono mixture magnitude of every
        training song, whole (the mixture as the sum of its sources, without augmentation)."""
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler()
        enc = copy.deepcopy(self.encoder).to("cpu")
        for name in self.train.names:
            x = sum(self.train.songs[name][s] for s in self.train.sources(name))
            with torch.no_grad():
                spec = enc(torch.from_numpy(x)[None]).mean(1, keepdim=False).permute(0, 2, 1)
            scaler.partial_fit(np.squeeze(spec.numpy()))
        std = np.maximum(scaler.scale_, 1e-4 * np.max(scaler.scale_))
        return scaler.mean_, std

    def _example(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        song = self.train.songs[name]
        n = next(iter(song.values())).shape[1]
        start = int(self.rng.uniform(0, max(0, n - self.seq)))
        srcs = {}
        for s in self.train.sources(name):
            a = song[s][:, start : start + self.seq] * self.rng.uniform(0.25, 1.25)
            if a.shape[0] == 2 and self.rng.random() < 0.5:
                a = a[::-1]
            srcs[s] = np.pad(a, ((0, 0), (0, self.seq - a.shape[1])))
        return sum(srcs.values()), srcs[self.train.target]

    def _epoch_order(self) -> list[str]:
        order = [n for n in self.train.names for _ in range(self.samples_per_track)]
        return [order[i] for i in self.rng.permutation(len(order))]

    def _valid_loss(self) -> float:
        self.unmix.eval()
        losses = []
        with torch.no_grad():
            for name in self.valid.names:
                song = self.valid.songs[name]
                x = sum(song[s] for s in self.valid.sources(name))
                y = song[self.valid.target]
                X = self.encoder(torch.from_numpy(x)[None].to(self.device))
                Y = self.encoder(torch.from_numpy(y)[None].to(self.device))
                losses.append(float(torch.nn.functional.mse_loss(self.unmix(X), Y)))
        self.unmix.train()
        return float(np.mean(losses)) if losses else float("nan")

    def run(self, budgets_s: list[float], on_budget) -> None:
        """Train until the largest budget (seconds of training, validation included); at each budget call
        ``on_budget(budget_s, trainer)`` (its time not counted)."""
        budgets = sorted(budgets_s)
        spent, t0 = 0.0, time.perf_counter()
        self.unmix.train()
        while budgets:
            order = self._epoch_order()
            for i in range(0, len(order) - self.batch + 1, self.batch):
                pairs = [self._example(n) for n in order[i : i + self.batch]]
                x = torch.from_numpy(np.stack([p[0] for p in pairs]).astype(np.float32)).to(self.device)
                y = torch.from_numpy(np.stack([p[1] for p in pairs]).astype(np.float32)).to(self.device)
                self.opt.zero_grad()
                loss = torch.nn.functional.mse_loss(self.unmix(self.encoder(x)), self.encoder(y))
                loss.backward()
                self.opt.step()
                self.steps += 1
                self.examples += len(pairs)
                now = time.perf_counter()
                if budgets and spent + now - t0 >= budgets[0]:
                    spent += now - t0
                    on_budget(budgets.pop(0), self)
                    t0 = time.perf_counter()
                    if not budgets:
                        return
            self.sched.step(self._valid_loss())  # the recipe validates after every epoch

    def separate(self, mixture: np.ndarray) -> np.ndarray:
        """``(2, samples)`` mixture -> the target estimate ``(2, samples)``: the estimated magnitude with the
        mixture's phase, through the centred STFT that open-unmix's ``Separator`` separates with."""
        _, transforms, _ = import_openunmix()

        self.unmix.eval()
        stft, istft = transforms.make_filterbanks(n_fft=4096, n_hop=1024, center=True, sample_rate=self.train.rate)
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(mixture, dtype=np.float32))[None].to(self.device)
            spec = torch.view_as_complex(stft.to(self.device)(x))  # (1, channels, bins, frames)
            est = self.unmix(spec.abs()) * torch.exp(1j * spec.angle())
            out = istft.to(self.device)(torch.view_as_real(est), length=x.shape[-1])
        self.unmix.train()
        return out[0].cpu().numpy()


def load_songs(root: Path, subset: str, names: list[str], target: str) -> Songs:
    """Every stem and the mixture of the tracks ``names`` of ``root/subset`` (any layout ``discover`` reads),
    in memory."""
    from curate.data.datasets import MIXTURE, discover

    songs, rate = {}, 44100
    for track in discover(root, subset=subset):
        if track.name in names:
            audio, rate = track.load_all([*track.stems, MIXTURE])
            songs[track.name] = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in audio.items()}
    return Songs(songs, int(rate), target)
