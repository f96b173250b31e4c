"""The ``musicnn`` embedder: a PyTorch port of MTT_musicnn (Pons & Serra 2019), pretrained, offline.

musicnn is a music-tagging CNN trained on MagnaTagATune (50 tags: guitar, drums, piano, vocal,
male/female voice, no vocals, ...): knowledge about instruments that does not come from the
dataset being curated. Architecture (``musicnn`` 0.1.0, ``models.build_musicnn``):

* input: ``log10(10000 * mel + 1)`` of 16 kHz mono audio, 96 Slaney mel bands, 512-sample FFT,
  256-sample hop (``(frames, 96)``; the network was trained on 3-s patches of 187 frames);
* front end: batch norm of the input, then *timbral* convolutions (204 filters of 7 frames x 38 and
  x 67 mel bands) and *temporal* convolutions (3 x 51 filters of 128, 64, 32 frames x 1 band), each
  ReLU, batch norm and max-pooled over frequency: 561 features per frame;
* mid end: three 7-frame convolutions of 64 filters (ReLU, batch norm; the last two residual),
  densely connected with the front end: 753 features per frame;
* back end: max and mean over time (the *pooled* 1506-d vector, max and mean interleaved as the
  original flattens them), batch norm, dense 200 + ReLU + batch norm (the *penultimate* 200-d
  layer), dense 50 and a sigmoid (the tags, :data:`MTT_TAGS`).

The weights (``curate/assets/musicnn_mtt.safetensors``, float16, ISC licence in
``curate/assets/MUSICNN_LICENSE.md``) were converted once from the checkpoint in the ``musicnn``
0.1.0 wheel by ``scripts/convert_musicnn.py``; ``tests/curate/scoring/test_musicnn.py`` checks this port against
the original model's outputs recorded there. Unlike the original front end, the mel power is never
cast to float16 (which overflows to inf on loud stems).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soxr
import torch
import torch.nn.functional as F
from torch import nn

from curate import ASSETS
from curate.common.errors import StemcurateError
from curate.scoring.spectra import StemSpectrum

SAMPLE_RATE = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
PATCH_FRAMES = 187
WEIGHTS = ASSETS / "musicnn_mtt.safetensors"
MTT_TAGS = (
    "guitar",
    "classical",
    "slow",
    "techno",
    "strings",
    "drums",
    "electronic",
    "rock",
    "fast",
    "piano",
    "ambient",
    "beat",
    "violin",
    "vocal",
    "synth",
    "female",
    "indian",
    "opera",
    "male",
    "singing",
    "vocals",
    "no vocals",
    "harpsichord",
    "loud",
    "quiet",
    "flute",
    "woman",
    "male vocal",
    "no vocal",
    "pop",
    "soft",
    "sitar",
    "solo",
    "man",
    "classic",
    "choir",
    "voice",
    "new age",
    "dance",
    "male voice",
    "female vocal",
    "beats",
    "harp",
    "cello",
    "no voice",
    "weird",
    "country",
    "metal",
    "female voice",
    "choral",
)
FRAME_DIM = 753
"""Features per frame after the mid end (561 front end + 3 x 64 mid end)."""
POOLED_DIM = 2 * FRAME_DIM
PENULTIMATE_DIM = 200
_BN_EPS = 1e-3  # tf.compat.v1.layers.batch_normalization's default
_CONTEXT = 80  # frames of context on each side when a long input is processed in chunks (receptive field +-76)


def slaney_mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Slaney-style mel filters with Slaney area normalisation, ``(n_mels, n_fft // 2 + 1)`` float32.

    The filters of ``librosa.filters.mel(sr, n_fft, n_mels)`` with its defaults (``htk=False``,
    ``norm='slaney'``, 0 Hz to Nyquist), which musicnn was trained with.
    """
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0

    def hz_to_mel(f):
        f = np.asarray(f, dtype=np.float64)
        return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)

    def mel_to_hz(m):
        m = np.asarray(m, dtype=np.float64)
        return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)

    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


class _Block(nn.Module):
    """Convolution, ReLU, batch norm (the order of the original)."""

    def __init__(self, conv: nn.Module, channels: int):
        super().__init__()
        self.conv = conv
        self.bn = (
            nn.BatchNorm1d(channels, eps=_BN_EPS)
            if isinstance(conv, nn.Conv1d)
            else nn.BatchNorm2d(channels, eps=_BN_EPS)
        )

    def forward(self, x):
        return self.bn(F.relu(self.conv(x)))

    def max_over_frequency(self, x: torch.Tensor) -> torch.Tensor:
        """``forward(x).amax(dim=3)`` without the full-size ReLU and batch norm: ``(batch, channels, frames)``.

        The batch norm is a per-channel affine map ``a * r + b``, and ReLU is monotonic, so the
        maximum over frequency is ``a * relu(max z) + b`` where ``a >= 0`` and ``a * relu(min z) + b``
        where ``a < 0`` (``z``: the convolution's output).
        """
        z = self.conv(x)
        bn = self.bn
        a = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        b = bn.bias - a * bn.running_mean
        neg = a < 0
        ext = z.amax(dim=3)
        if neg.any():
            ext[:, neg] = z[:, neg].amin(dim=3)
        return a[None, :, None] * F.relu(ext) + b[None, :, None]


class MusiCNN(nn.Module):
    """MTT_musicnn. ``forward(x)`` takes log-mel patches ``(batch, frames, 96)``; eval mode only."""

    def __init__(self):
        super().__init__()
        self.bn_input = nn.BatchNorm2d(1, eps=_BN_EPS)
        self.timbral74 = _Block(nn.Conv2d(1, 204, (7, int(0.4 * N_MELS))), 204)
        self.timbral77 = _Block(nn.Conv2d(1, 204, (7, int(0.7 * N_MELS))), 204)
        self.temporal = nn.ModuleList(_Block(nn.Conv2d(1, 51, (k, 1)), 51) for k in (128, 64, 32))
        self.mid = nn.ModuleList(_Block(nn.Conv1d(c, 64, 7, padding=3), 64) for c in (561, 64, 64))
        self.pool_bn = nn.BatchNorm1d(POOLED_DIM, eps=_BN_EPS)
        self.dense = nn.Linear(POOLED_DIM, PENULTIMATE_DIM)
        self.dense_bn = nn.BatchNorm1d(PENULTIMATE_DIM, eps=_BN_EPS)
        self.output = nn.Linear(PENULTIMATE_DIM, len(MTT_TAGS))
        self.eval()

    def frame_features(self, x: torch.Tensor) -> torch.Tensor:
        """Front and mid end: ``(batch, frames, 96)`` log-mel -> ``(batch, 753, frames)`` features per frame."""
        x = self.bn_input(x[:, None])  # (B, 1, T, 96)
        padded = F.pad(x, (0, 0, 3, 3))  # time only, zeros after the batch norm, as the original
        feats = [blk.max_over_frequency(padded) for blk in (self.timbral74, self.timbral77)]
        for k, blk in zip((128, 64, 32), self.temporal):  # TensorFlow 'same': the extra zero goes at the end
            feats.append(blk.max_over_frequency(F.pad(x, (0, 0, (k - 1) // 2, k // 2))))
        front = torch.cat(feats, dim=1)  # (B, 561, T)
        m1 = self.mid[0](front)
        m2 = self.mid[1](m1) + m1
        m3 = self.mid[2](m2) + m2
        return torch.cat([front, m1, m2, m3], dim=1)

    @staticmethod
    def pool(features: torch.Tensor) -> torch.Tensor:
        """``(batch, 753, frames)`` -> the pooled ``(batch, 1506)`` vector, ``[max_0, mean_0, max_1, ...]``."""
        return torch.stack([features.amax(dim=2), features.mean(dim=2)], dim=2).flatten(1)

    def head(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Back end from the pooled vector: ``(penultimate (batch, 200), tags (batch, 50))``, tags in 0-1."""
        penultimate = self.dense_bn(F.relu(self.dense(self.pool_bn(pooled))))
        return penultimate, torch.sigmoid(self.output(penultimate))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``(batch, frames, 96)`` -> ``{"tags": (batch, 50), "penultimate": (batch, 200), "pooled": (batch,
        1506)}``."""
        pooled = self.pool(self.frame_features(x))
        penultimate, tags = self.head(pooled)
        return {"tags": tags, "penultimate": penultimate, "pooled": pooled}


def load_musicnn(path: str | Path = WEIGHTS, *, device: str = "cpu") -> MusiCNN:
    """MTT_musicnn with the weights of ``path`` (float16 safetensors, computed in float32), in eval mode.

    Raises :class:`StemcurateError` naming the file when it is missing, not a safetensors file, or
    lacks, mis-shapes or holds non-finite weights.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise StemcurateError(f"{path}: musicnn weights not found")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise StemcurateError(
            f"{path}: not a readable safetensors file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
        ) from None
    model = MusiCNN()
    want = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    missing = sorted(set(want) - set(state))
    extra = sorted(set(state) - set(want))
    if missing or extra:
        raise StemcurateError(f"{path}: not MTT_musicnn weights (missing {missing[:3]}, unexpected {extra[:3]})")
    for k, v in want.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise StemcurateError(f"{path}: {k} has shape {tuple(state[k].shape)}, expected {tuple(v.shape)}")
        if not torch.isfinite(state[k]).all():
            raise StemcurateError(f"{path}: {k} holds NaN or inf")
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    return model.to(device).eval()


def log_mel(audio: torch.Tensor) -> torch.Tensor:
    """musicnn's input from 16 kHz mono audio ``(samples,)``: ``(frames, 96)`` float32.

    Centred frames (reflect padding), periodic Hann window, power spectrum, Slaney mel, then
    ``log10(10000 * mel + 1)``; frame ``t`` is centred on sample ``t * 256``.
    """
    x = audio.float()
    if x.shape[-1] <= N_FFT // 2:
        x = F.pad(x, (0, N_FFT // 2 + 1 - x.shape[-1]))
    spec = torch.stft(
        x,
        N_FFT,
        HOP,
        window=torch.hann_window(N_FFT, device=x.device),
        center=True,
        pad_mode="reflect",
        return_complex=True,
    )
    fb = torch.from_numpy(slaney_mel_filterbank()).to(x.device)
    mel = fb @ (spec.real**2 + spec.imag**2)
    return torch.log10(10000 * mel + 1).T.contiguous()


class MusicnnEmbedder:
    """Pooled musicnn features (1506-d) and the penultimate layer (200-d) per fragment: ``(n, 1706)``.

    The stem is mixed to mono and resampled to 16 kHz once; the convolutional front and mid end run
    once over each stretch of fragments (in chunks with context), and each fragment pools the frames
    whose centres fall inside it, so overlapping fragments cost nothing extra.
    """

    name = "musicnn"

    def __init__(self, weights: str | Path = WEIGHTS, *, device: str = "cpu", chunk_frames: int = 2048):
        self.model = load_musicnn(weights, device=device)
        self.device = device
        self.chunk_frames = chunk_frames

    @torch.inference_mode()
    def stem_features(self, audio: np.ndarray, sample_rate: int, ranges: np.ndarray | None = None) -> torch.Tensor:
        """``(753, frames)`` features of the stem ``audio`` ``(channels, samples)`` at 16 kHz hop 256.

        ``ranges``: ``(k, 2)`` frame ranges ``[a, b)`` to compute (others stay 0); each range is computed
        as one input, zero-padded at its edges like the original model's patches, in chunks that
        overlap by the receptive field (so the chunk size does not change the result). Default: all.
        """
        mono = np.asarray(audio, dtype=np.float32).mean(axis=0)
        if sample_rate != SAMPLE_RATE:
            mono = soxr.resample(mono, sample_rate, SAMPLE_RATE).astype(np.float32)
        spec = log_mel(torch.from_numpy(np.ascontiguousarray(mono)).to(self.device))
        n, step = len(spec), self.chunk_frames
        ranges = (
            np.array([[0, n]]) if ranges is None else np.clip(np.asarray(ranges, dtype=np.int64).reshape(-1, 2), 0, n)
        )
        out = torch.zeros((FRAME_DIM, n), device=spec.device)
        for r0, r1 in ranges:
            seg = spec[r0:r1]
            for a in range(0, r1 - r0, step):
                lo, hi = max(0, a - _CONTEXT), min(r1 - r0, a + step + _CONTEXT)
                feats = self.model.frame_features(seg[None, lo:hi])[0]
                out[:, r0 + a : r0 + a + min(step, r1 - r0 - a)] = feats[:, a - lo : a - lo + min(step, r1 - r0 - a)]
        return out

    @torch.inference_mode()
    def embed(self, audio: np.ndarray, spectrum: StemSpectrum, bounds: np.ndarray) -> np.ndarray:
        """``(n, 1706)`` float32 for the fragments ``bounds`` ``(n, 2)`` (samples at ``spectrum.sample_rate``)
        of one stem ``audio`` ``(channels, samples)``: ``[pooled (1506), penultimate (200)]``.

        The network runs over the fragments' frames and the receptive field around them only
        (overlapping fragments merged into one stretch), so audio that SAD dropped costs nothing and
        a fragment's features are those of the whole stem."""
        bounds = np.asarray(bounds, dtype=np.int64).reshape(-1, 2)
        if len(bounds) == 0:
            return np.zeros((0, POOLED_DIM + PENULTIMATE_DIM), np.float32)
        scale = SAMPLE_RATE / spectrum.sample_rate
        n = 1 + int(round(audio.shape[-1] * scale)) // HOP
        first = np.clip(np.ceil(bounds[:, 0] * scale / HOP).astype(np.int64), 0, n - 1)
        last = np.clip(np.ceil(bounds[:, 1] * scale / HOP).astype(np.int64), first + 1, n)
        feats = self.stem_features(
            audio, spectrum.sample_rate, _merge(np.stack([first, last], axis=1), gap=2 * _CONTEXT, pad=_CONTEXT, n=n)
        )
        last = np.minimum(last, feats.shape[1])
        first = np.minimum(first, last - 1)
        pooled = torch.stack([self.model.pool(feats[None, :, a:b])[0] for a, b in zip(first, last)])
        penultimate, _ = self.model.head(pooled)
        return torch.cat([pooled, penultimate], dim=1).cpu().numpy().astype(np.float32)


def _merge(ranges: np.ndarray, *, gap: int = 0, pad: int = 0, n: int | None = None) -> np.ndarray:
    """``[a, b)`` ranges ``(k, 2)`` widened by ``pad`` on each side (within ``[0, n)``), then merged where
    they overlap or lie less than ``gap`` apart; sorted."""
    r = ranges[np.argsort(ranges[:, 0], kind="stable")].copy()
    r[:, 0] = np.maximum(r[:, 0] - pad, 0)
    r[:, 1] = r[:, 1] + pad if n is None else np.minimum(r[:, 1] + pad, n)
    out = [list(r[0])]
    for a, b in r[1:]:
        if a <= out[-1][1] + gap:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return np.array(out, dtype=np.int64)
