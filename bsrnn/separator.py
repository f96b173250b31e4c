"""Chunked separation of long audio with windowed overlap-add.

The signal is cut into frames of ``frame_s`` seconds every ``hop_s`` seconds, the model runs on
batches of frames, and the outputs are recombined by overlap-add with a trapezoid window (linear
fades of ``frame - hop`` samples, at most half a frame) divided by the summed windows. An identity
model therefore returns its input exactly, at any length (shorter than one frame included), with
no gain ripple between frames. Only ``batch_size`` frames exist at a time.

The high-level API holds one model per target::

    sep = Separator.from_checkpoint(["saved_models/vocals/vocals.ckpt"], device="cpu")
    stems = sep(audio, sample_rate)   # {"vocals": (channels, samples) at sep.sample_rate}
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import soxr
import torch
from torch import nn

from bsrnn.errors import AudioError, BSRNNError, CheckpointError, DeviceError


def trapezoid(length: int, fade: int) -> torch.Tensor:
    """Window of ``length`` samples: linear fade-in and fade-out of ``fade`` samples, flat in between."""
    w = torch.ones(length)
    if fade > 0:
        ramp = (torch.arange(fade) + 0.5) / fade
        w[:fade] = ramp
        w[length - fade :] = ramp.flip(0)
    return w


MAX_RESAMPLE = 16
"""Largest factor between the audio's sample rate and the models' (a header declaring 1 Hz would be
resampled 44100-fold, out of memory)."""

MAX_FRAME_S = 60.0
"""Longest separation frame, seconds (memory grows with it; the models were trained on a few seconds)."""


def torch_device(device: str | torch.device) -> torch.device:
    """``device`` as a :class:`torch.device` that this machine has; :class:`~bsrnn.errors.DeviceError` naming it
    otherwise (an unknown name, ``cuda`` without a CUDA build or GPU, ``cuda:3`` on a one-GPU machine)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise DeviceError(f"--device {device}: {str(exc).splitlines()[0][:160]}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {device}: CUDA is not available on this machine (torch {torch.__version__})")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeviceError(f"--device {device}: MPS is not available on this machine")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"--device {device}: use cpu, cuda, cuda:N or mps")
    return dev


PRECISIONS = ("fp32", "bf16", "int8")
"""Arithmetic of a :class:`Separator`: ``fp32``; ``bf16``, the models under ``torch.autocast`` with bfloat16
(CPUs with AVX-512 BF16/AMX and recent GPUs run it natively); ``int8``, dynamic int8 quantisation of the
LSTM and linear layers (``torch.ao.quantization.quantize_dynamic``, CPU only; the band layers stay fp32).
``bench`` figures of each against fp32 (speed and SDR of the output) are in docs/benchmarks.md."""


def check_precision(precision) -> None:
    """:class:`BSRNNError` unless ``precision`` is one of :data:`PRECISIONS` (checked before any device or model
    is touched: a bad name is wrong on any machine)."""
    if precision not in PRECISIONS:
        raise BSRNNError(f"precision {precision!r}: one of {', '.join(PRECISIONS)}")


def default_batch_size(device: torch.device) -> int:
    """Frames per model call when none is given: 1 on the CPU, 4 elsewhere.

    On the CPU the LSTMs already run at the arithmetic's limit with one 3-s frame, so a larger batch
    adds memory, not speed: the paper-size model over 20 s of stereo on 2 cores ran at real-time factor
    1.57, 1.59 and 1.60 with 1, 2 and 4 frames, peaking 133, 240 and 448 MiB over the warm model (its
    LSTMs project all of a batch's frames at once). An accelerator needs the larger batch to fill it."""
    return 1 if torch.device(device).type == "cpu" else 4


def _int8(model: nn.Module) -> nn.Module:
    """A dynamically int8-quantised copy of ``model``'s LSTM and linear layers (the model is left as it is)."""
    import copy
    import warnings

    try:
        from torch.ao.quantization import quantize_dynamic
    except ImportError:  # pragma: no cover - removed in some future torch
        raise BSRNNError("precision int8: this torch has no torch.ao.quantization; use fp32 or bf16") from None
    with warnings.catch_warnings():  # torch deprecates eager quantisation in favour of torchao, not installed here
        warnings.simplefilter("ignore")
        return quantize_dynamic(copy.deepcopy(model), {nn.LSTM, nn.Linear}, dtype=torch.qint8)


class Separator:
    """Runs models ``(batch, channels, samples) -> (batch, channels, samples)`` over long audio.

    ``model`` is one model or ``{target: model}``; :meth:`separate` runs the first (or only) one,
    calling the separator runs them all. ``device``: where the models run (they are moved there);
    None keeps them where their parameters are. ``precision``: one of :data:`PRECISIONS`. Results
    always come back on the CPU as float32.

    Memory: besides the models and the input, the output and its overlap weights (``channels + 1``
    floats per sample) and one batch of ``batch_size`` frames at a time: no copy of the input, no
    chunk outputs kept, no float64. ``batch_size`` None: :func:`default_batch_size` for the device.
    """

    def __init__(
        self,
        model: nn.Module | dict[str, nn.Module],
        *,
        sample_rate: int = 44100,
        frame_s: float = 3.0,
        hop_s: float = 2.5,
        batch_size: int | None = None,
        device: str | torch.device | None = None,
        precision: str = "fp32",
    ):
        if not all(
            isinstance(v, numbers.Real) and not isinstance(v, bool)
            for v in (frame_s, hop_s, sample_rate, 1 if batch_size is None else batch_size)
        ):
            raise BSRNNError(
                f"frame_s {frame_s!r}, hop_s {hop_s!r}, sample_rate {sample_rate!r}, batch_size {batch_size!r}: give "
                f"numbers"
            )
        given = {"frame_s": frame_s, "hop_s": hop_s, "sample_rate": sample_rate, "batch_size": batch_size}
        infinite = [f"{k} {v!r}" for k, v in given.items() if v is not None and not math.isfinite(v)]
        if infinite:
            raise BSRNNError(f"{', '.join(infinite)}: give finite numbers")
        if batch_size is not None and (int(batch_size) != batch_size or batch_size < 1):
            raise BSRNNError(f"batch_size {batch_size}: give a whole number of frames, 1 or more")
        if int(sample_rate) != sample_rate or sample_rate < 1:
            raise BSRNNError(f"sample_rate {sample_rate!r}: give a whole number of Hz, 1 or more")
        check_precision(precision)
        if not 0 < hop_s <= frame_s:
            raise BSRNNError(f"hop ({hop_s} s) must be > 0 and at most the frame ({frame_s} s)")
        if frame_s > MAX_FRAME_S:
            raise BSRNNError(f"frame ({frame_s} s) must be at most {MAX_FRAME_S:.0f} s")
        if isinstance(model, dict):
            if not model:
                raise BSRNNError("no models given")
            self.models = dict(model)
        else:
            target = getattr(getattr(model, "config", None), "target", "target")
            self.models = {target: model}
        model = next(iter(self.models.values()))
        self.model = model
        self.sample_rate = sample_rate = int(sample_rate)
        self.channels = getattr(getattr(model, "config", None), "channels", 2)
        n_fft = max((getattr(getattr(m, "config", None), "n_fft", 0) for m in self.models.values()), default=0)
        if frame_s * sample_rate < n_fft:
            raise BSRNNError(
                f"frame ({frame_s} s) is shorter than the models' STFT window ({n_fft} samples at {sample_rate} Hz)"
            )
        self.frame = int(round(frame_s * sample_rate))
        self.hop = int(round(hop_s * sample_rate))
        if self.hop < 1:
            raise BSRNNError(f"hop ({hop_s} s) is under one sample at {sample_rate} Hz")
        self.fade = min(self.frame - self.hop, self.frame // 2)
        self.device = (
            torch_device(device)
            if device is not None
            else next((p.device for p in model.parameters()), torch.device("cpu"))
        )
        self.batch_size = default_batch_size(self.device) if batch_size is None else int(batch_size)
        if precision == "int8" and self.device.type != "cpu":  # before any model moves
            raise BSRNNError(f"precision int8 runs on the CPU, not on {self.device} (use bf16 there)")
        if device is not None:  # a model built or loaded on the CPU runs where the batches go
            for m in self.models.values():
                m.to(self.device)
        self.precision = precision
        if precision == "int8":
            self.models = {t: _int8(m) for t, m in self.models.items()}
            self.model = next(iter(self.models.values()))

    @classmethod
    def from_checkpoint(
        cls, sources, *, targets: list[str] | None = None, device: str | torch.device = "cpu", **options
    ) -> "Separator":
        """The models of one model source or several (:func:`bsrnn.checkpoint.load_models`: model files,
        run folders, ``saved_models`` folders; none: ``./saved_models``), one per target, only ``targets``
        when given. :class:`~bsrnn.errors.CheckpointError` for a bad source or models of different
        sample rates. ``options``: ``frame_s``, ``hop_s``, ``batch_size``, ``precision``."""
        from bsrnn.checkpoint import load_models

        check_precision(options.get("precision", "fp32"))
        loaded = load_models(sources, targets, device=device)
        rates = {m.config.sample_rate for _, m in loaded.values()}
        if len(rates) > 1:
            raise CheckpointError(
                f"{', '.join(str(f) for f, _ in loaded.values())}: models with different sample rates {sorted(rates)}"
            )
        return cls({t: m for t, (_, m) in loaded.items()}, sample_rate=rates.pop(), device=device, **options)

    @property
    def targets(self) -> list[str]:
        return list(self.models)

    def __call__(self, audio, sample_rate: int) -> dict[str, torch.Tensor]:
        """``audio`` ``(channels, samples)`` or ``(samples,)`` at ``sample_rate`` Hz -> ``{target: (channels,
        samples)}``
        at :attr:`sample_rate` Hz. Mono input is separated as dual mono and returned mono.
        :class:`AudioError` for anything else (see there): never NaN or inf in the result."""
        low, high = -(-self.sample_rate // MAX_RESAMPLE), self.sample_rate * MAX_RESAMPLE
        if (
            isinstance(sample_rate, bool)
            or not isinstance(sample_rate, (int, np.integer))
            or not low <= sample_rate <= high
        ):
            raise AudioError(
                f"sample rate {sample_rate!r}: give an integer from {low} to {high} Hz (the models run at "
                f"{self.sample_rate} Hz)"
            )
        try:
            x = torch.as_tensor(
                np.asarray(audio, dtype=np.float32) if not torch.is_tensor(audio) else audio, dtype=torch.float32
            ).cpu()
        except (TypeError, ValueError, RuntimeError):
            raise AudioError(
                f"audio of type {type(audio).__name__}: give a (channels, samples) array of numbers"
            ) from None
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2:
            raise AudioError(f"audio must be (channels, samples), got shape {tuple(x.shape)}")
        mono = x.shape[0] == 1 and self.channels == 2
        if mono:
            x = x.repeat(2, 1)
        if x.shape[0] != self.channels:
            hint = " (a (samples, channels) array? transpose it)" if x.shape[1] == self.channels else ""
            raise AudioError(f"the model takes {self.channels} channels, the audio has {x.shape[0]}{hint}")
        if not bool(torch.isfinite(x).all()):
            raise AudioError(f"audio: {int((~torch.isfinite(x)).sum())} NaN/inf samples")
        if sample_rate != self.sample_rate:
            x = torch.from_numpy(np.ascontiguousarray(soxr.resample(x.numpy().T, sample_rate, self.sample_rate).T))
        out = {t: self._run(m, x) for t, m in self.models.items()}
        for t, y in out.items():
            if not bool(torch.isfinite(y).all()):
                raise AudioError(
                    f"the {t} model gave NaN/inf samples (input far above full scale, peak {float(x.abs().max()):.3g}? "
                    "non-finite weights?)"
                )
        return {t: y.mean(0, keepdim=True) for t, y in out.items()} if mono else out

    def separate(self, audio) -> torch.Tensor:
        """``audio`` ``(channels, samples)`` (tensor or array) -> separated ``(channels, samples)`` float32 on the
        CPU."""
        return self._run(self.model, audio)

    @torch.inference_mode()
    def _run(self, model: nn.Module, audio) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(audio) if not torch.is_tensor(audio) else audio, dtype=torch.float32)
        if x.ndim != 2:
            raise AudioError(f"audio must be (channels, samples), got shape {tuple(x.shape)}")
        channels, n = x.shape
        frame, hop, pad = self.frame, self.hop, self.fade
        n_frames = max(1, int(np.ceil((n + 2 * pad - frame) / hop)) + 1)
        total = (n_frames - 1) * hop + frame
        window = trapezoid(frame, self.fade)
        out = torch.zeros(channels, total)
        weight = torch.zeros(total)
        for first in range(0, n_frames, self.batch_size):
            idx = range(first, min(n_frames, first + self.batch_size))
            batch = torch.zeros(len(idx), channels, frame)  # frames cut from the input, zeros past its ends
            for b, i in enumerate(idx):
                start = i * hop - pad
                lo, hi = max(0, start), min(n, start + frame)
                if hi > lo:
                    batch[b, :, lo - start : hi - start] = x[:, lo:hi]
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
                y = model(batch.to(self.device))
            y = y.float().cpu()
            for b, i in enumerate(idx):
                out[:, i * hop : i * hop + frame].addcmul_(y[b], window)
                weight[i * hop : i * hop + frame] += window
            del batch, y  # one batch at a time
        return out.div_(weight.clamp_min_(1e-8))[:, pad : pad + n]  # in place: no second output-sized buffer
