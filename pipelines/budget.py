"""What a training run will cost on this device: examples per second of the model's training step,
measured on random input before the run, and the lines ``pipelines train`` prints about it."""

from __future__ import annotations

import time

import torch

from bsrnn.model import BSRNN, SIZES, BSRNNConfig
from pipelines.config import TrainConfig


def native_bf16(device: str | torch.device = "cpu") -> bool:
    """Whether ``device`` computes bfloat16 natively: a CUDA GPU that supports it, or a CPU with AVX512-BF16 or
    AMX (elsewhere oneDNN emulates bfloat16, slower than float32)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
        return any(bool(check()) for check in checks if check is not None)
    return False


def resolve_precision(precision: str, device: str | torch.device = "cpu") -> str:
    """``fp32`` or ``bf16`` for a :class:`~pipelines.config.TrainConfig` ``precision`` on ``device``: ``auto`` is
    ``bf16`` where :func:`native_bf16`, else ``fp32``."""
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def examples_per_second(
    model: BSRNNConfig,
    *,
    batch_size: int,
    crop_s: float,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    seconds: float = 1.5,
) -> float:
    """Training examples per second of ``model`` on ``device``: forward, the loss's backward and an Adam step
    on random ``(batch, channels, crop_s * sample_rate)`` input, after one untimed step, timed for about
    ``seconds``; ``precision`` ``fp32``, ``bf16`` or ``auto`` as in training (:func:`resolve_precision`).
    On the CPU one example per step is timed and scaled to ``batch_size`` (a step's cost there
    grows linearly with the batch); elsewhere the whole batch is. Data loading is not included."""
    device = torch.device(device)
    per_step = batch_size if device.type != "cpu" else 1
    bf16 = resolve_precision(precision, device) == "bf16"
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # the run's random state is kept
        return _timed_steps(model, per_step, crop_s, device, seconds, bf16)


def _timed_steps(
    model: BSRNNConfig, per_step: int, crop_s: float, device: torch.device, seconds: float, bf16: bool
) -> float:
    net = BSRNN(model).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-6)
    x = torch.randn(per_step, model.channels, round(crop_s * model.sample_rate), device=device)

    def step():
        opt.zero_grad()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = net(x).abs().mean()
        loss.float().backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    step()
    n, t0 = 0, time.perf_counter()
    while n == 0 or time.perf_counter() - t0 < seconds:
        step()
        n += 1
    return n * per_step / (time.perf_counter() - t0)


def size_name(model: BSRNNConfig) -> str:
    """The preset a model's dimensions and hop match (:data:`bsrnn.model.SIZES`), else ``custom``."""
    return next((name for name, d in SIZES.items() if all(getattr(model, k) == v for k, v in d.items())), "custom")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def device_label(device: torch.device) -> str:
    """``cpu (2 threads)`` or the GPU's name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({torch.get_num_threads()} threads)" if device.type == "cpu" else str(device)


def budget_lines(
    model: BSRNNConfig, cfg: TrainConfig, rate: float, device: str, *, start_step: int = 0, precision: str | None = None
) -> list[str]:
    """What ``pipelines train`` says before a run: the expected examples per second (``rate``, in the resolved
    ``precision``, default ``cfg.precision``) and how long the steps from ``start_step`` to ``cfg.max_steps``
    will take at that rate."""
    params = sum(p.numel() for p in BSRNN(model).parameters()) / 1e6
    steps = cfg.max_steps - start_step
    return [
        f"{model.target}: {size_name(model)} model ({params:.1f} M parameters) on {device}, "
        f"{precision or cfg.precision}: about {rate:.2f} "
        f"examples/s (batch {cfg.batch_size} of {cfg.crop_s:g}-s crops, data loading not counted); {steps} steps "
        f"take about {_duration(steps * cfg.batch_size / rate)}"
    ]


def schedule_warning(cfg: TrainConfig) -> str | None:
    """A warning when the run ends before its learning-rate warm-up does (it then never trains at the full
    rate), else None."""
    from pipelines.module import warmup_end

    end = warmup_end(cfg)
    if cfg.max_steps > end:
        return None
    knob = "warmup_epochs" if cfg.schedule == "seed" else "warmup_steps"
    return (
        f"warning: --max-steps {cfg.max_steps} ends before the learning-rate warm-up does (step {end}, "
        f"schedule {cfg.schedule}): the run never trains at the full rate; give more steps or a shorter "
        f"--set {knob}=..."
    )
