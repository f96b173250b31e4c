"""Training configuration: the model's hyperparameters (:class:`bsrnn.model.BSRNNConfig`) and the
training-only settings (:class:`TrainConfig`), resolved from ``--model paper|tiny|PATH.yaml`` and
``--set key=value`` overrides, and saved beside every run as ``config.yaml``."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import yaml

from bsrnn.model import SIZES, BSRNNConfig
from curate.common.errors import MAX_SEED, StemcurateError

WEIGHTINGS = ("none", "quality", "binary")
SCHEDULES = ("cosine", "constant", "seed")
TRAIN_PRECISIONS = ("auto", "fp32", "bf16")
"""Arithmetic of training: ``fp32``; ``bf16``, forward and loss under ``torch.autocast`` with bfloat16 and the
weights, gradients and optimiser state in float32 (Lightning's ``bf16-mixed``); ``auto``, ``bf16`` where the
device computes bfloat16 natively (a CUDA GPU that supports it; a CPU with AVX512-BF16 or AMX, through oneDNN),
else ``fp32`` (:func:`pipelines.budget.resolve_precision`)."""
TRUNCATE_MODES = ("history", "batch")
TRUNCATE_ON = ("relative", "absolute")


MAX_CROP_S = 60.0
"""Longest training or validation crop, seconds."""


@dataclass
class TrainConfig:
    """Training-only settings (they may differ between a run and the checkpoint it starts from)."""

    seed: int = 0
    # data
    crop_s: float = 3.0  # training crop, seconds
    batch_size: int = 4
    num_workers: int = 0
    remix_p: float = 0.8  # accompaniment from 1-3 random fragments of other tracks
    silence_p: float = 0.1  # silent target
    fill_missing: bool = False  # accompaniment stem with nothing kept in the track: same stem of another track
    gain_db: float = 10.0  # uniform random gain per source in [-gain_db, +gain_db]
    swap_p: float = 0.5  # left and right channels of a source swapped (a mono source is unchanged)
    speed_p: float = 0.0  # the example played faster or slower (pitch and tempo together, all its sources)
    speed_range: float = 0.1  # speed factor uniform in [1 - speed_range, 1 + speed_range]
    fade_s: float = 0.01  # fade at the edges of kept fragments
    valid_tracks: list = field(default_factory=list)
    valid_fraction: float = 0.1  # tracks held back when valid_tracks is empty (0: no validation)
    valid_crop_s: float = 6.0
    valid_crops_per_track: int = 4
    # optimisation (Adam). schedule "cosine": lr rises linearly over warmup_steps, then follows a half cosine
    # down to lr * min_lr_ratio at max_steps; "constant": the same warm-up, then lr; "seed": the seed's
    # lr * alpha^(warmup_epochs - e) while e < warmup_epochs, then gamma^(e - warmup_epochs), e = step // epoch_steps
    max_steps: int = 1000
    lr: float = 1e-3
    schedule: str = "cosine"
    warmup_steps: int = 100
    min_lr_ratio: float = 0.01
    warmup_epochs: int = 10
    warmup_alpha: float = 0.1
    decay_gamma: float = 0.98
    epoch_steps: int = 100
    grad_clip: float = 5.0
    precision: str = "auto"  # auto | fp32 | bf16 (TRAIN_PRECISIONS)
    ema_decay: float = 0.995  # EMA of the weights from the warm-up's end (pipelines.module.ema_decay); 0: none
    val_every: int = 100  # steps between validations / checkpoints
    # noise robustness
    weighting: str = "none"  # none | quality | binary
    binary_threshold: float = 0.7  # binary weighting: quality >= threshold is clean
    noisy_weight: float = 0.1  # binary weighting: weight of a noisy example before normalisation
    truncate: bool = False
    truncate_quantile: float = 0.3  # drop examples whose loss exceeds the (1 - c) quantile
    truncate_mode: str = "history"  # history (running window of recent losses) | batch
    truncate_warmup: int = 200  # steps before truncation starts
    truncate_history: int = 1000  # per-example losses kept for the history quantile
    truncate_on: str = "relative"  # relative (loss over a silent estimate's loss: level-free) | absolute
    truncate_level_band_db: float = (
        3.0  # history mode: compare with examples whose target-to-mixture level is this close (0: all)
    )

    def __post_init__(self):
        problems = [
            f"{f.name} {why} (got {getattr(self, f.name)!r})" for f in fields(self) if (why := _wrong_type(f, self))
        ]
        problems += [
            f"{f.name} must be a finite number (got {getattr(self, f.name)})"
            for f in fields(self)
            if isinstance(getattr(self, f.name), float) and not math.isfinite(getattr(self, f.name))
        ]
        if problems:
            raise StemcurateError("training settings: " + "; ".join(problems))
        if self.weighting not in WEIGHTINGS:
            problems.append(f"weighting must be one of {', '.join(WEIGHTINGS)} (got '{self.weighting}')")
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule must be one of {', '.join(SCHEDULES)} (got '{self.schedule}')")
        if self.precision not in TRAIN_PRECISIONS:
            problems.append(f"precision must be one of {', '.join(TRAIN_PRECISIONS)} (got '{self.precision}')")
        if self.truncate_mode not in TRUNCATE_MODES:
            problems.append(f"truncate_mode must be history or batch (got '{self.truncate_mode}')")
        if self.truncate_on not in TRUNCATE_ON:
            problems.append(f"truncate_on must be relative or absolute (got '{self.truncate_on}')")
        for name in (
            "remix_p",
            "silence_p",
            "swap_p",
            "speed_p",
            "valid_fraction",
            "binary_threshold",
            "noisy_weight",
            "min_lr_ratio",
        ):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                problems.append(f"{name} must be within 0-1 (got {getattr(self, name)})")
        if not 0.0 < self.truncate_quantile < 1.0:
            problems.append(f"truncate_quantile must be within (0, 1) (got {self.truncate_quantile})")
        for name in (
            "batch_size",
            "max_steps",
            "epoch_steps",
            "val_every",
            "truncate_history",
            "valid_crops_per_track",
        ):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name} must be >= 1 (got {getattr(self, name)})")
        for name in ("crop_s", "valid_crop_s"):
            if not 0 < float(getattr(self, name)) <= MAX_CROP_S:
                problems.append(f"{name} must be within (0, {MAX_CROP_S:.0f}] seconds (got {getattr(self, name)})")
        if not 0 <= int(self.seed) <= MAX_SEED:
            problems.append(f"seed must be within 0 .. 2**32 - 1 (got {self.seed})")
        for name, high in (("max_steps", MAX_STEPS), ("batch_size", MAX_BATCH), ("num_workers", 1024)):
            if int(getattr(self, name)) > high:
                problems.append(f"{name} must be at most {high} (got {getattr(self, name)})")
        for name in ("num_workers", "warmup_epochs", "warmup_steps"):
            if int(getattr(self, name)) < 0:
                problems.append(f"{name} must be >= 0 (got {getattr(self, name)})")
        if not 0 <= float(self.speed_range) < 0.5:
            problems.append(f"speed_range must be within [0, 0.5) (got {self.speed_range})")
        if not 0 <= float(self.gain_db) <= 40:
            problems.append(f"gain_db must be within [0, 40] dB (got {self.gain_db})")
        for name in ("fade_s", "truncate_level_band_db"):
            if float(getattr(self, name)) < 0:
                problems.append(f"{name} must be >= 0 (got {getattr(self, name)})")
        if not float(self.lr) > 0:
            problems.append(f"lr must be > 0 (got {self.lr})")
        for name in ("warmup_alpha", "decay_gamma"):  # factors of the learning rate per epoch
            if not 0 < float(getattr(self, name)) <= 1:
                problems.append(f"{name} must be within (0, 1] (got {getattr(self, name)})")
        if self.grad_clip < 0:
            problems.append(f"grad_clip must be >= 0 (got {self.grad_clip})")
        if not 0.0 <= self.ema_decay < 1.0:
            problems.append(f"ema_decay must be within [0, 1) (got {self.ema_decay})")
        if problems:
            raise StemcurateError("training settings: " + "; ".join(problems))


MAX_STEPS = 10**9
"""Most training steps of one run (far beyond any real run; more overflows the step sampler's indices)."""

MAX_BATCH = 65536
"""Largest batch, examples per step."""

MODEL_KEYS = {f.name for f in fields(BSRNNConfig)}
TRAIN_KEYS = {f.name for f in fields(TrainConfig)}


def _wrong_type(f, obj) -> str | None:
    """What is wrong with the type of field ``f`` of ``obj`` (declared ``float``, ``int`` or ``bool``), or None."""
    value = getattr(obj, f.name)
    if f.type == "bool":
        return None if isinstance(value, (bool, np.bool_)) else "must be true or false"
    if isinstance(value, (bool, np.bool_)):
        return None if f.type not in ("float", "int") else "must be a number"
    if f.type == "float":
        return None if isinstance(value, numbers.Real) else "must be a number"
    if f.type == "int":
        whole = isinstance(value, numbers.Integral) or (isinstance(value, float) and value.is_integer())
        return None if whole else "must be a whole number"
    return None


def parse_sets(items: list[str] | None) -> dict:
    """``["lr=3e-4", "bands=[[1000,100]]"]`` -> ``{"lr": 0.0003, "bands": [[1000, 100]]}`` (values as YAML)."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise StemcurateError(f"--set {item!r}: expected key=value")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            raise StemcurateError(f"--set {item!r}: value is not valid YAML") from None
        if isinstance(parsed, str):  # YAML 1.1 reads 3e-4 as a string
            try:
                parsed = float(parsed)
            except ValueError:
                pass
        out[key] = parsed
    unknown = sorted(set(out) - MODEL_KEYS - TRAIN_KEYS)
    if unknown:
        raise StemcurateError(
            f"--set: unknown key(s) {', '.join(unknown)} (model: {', '.join(sorted(MODEL_KEYS))}; "
            f"training: {', '.join(sorted(TRAIN_KEYS))})"
        )
    return out


CPU_SIZE = "tiny"
"""The size ``--model auto`` trains on a CPU: the preset that learned the most in 10 and 30 minutes of
this project's 2-core machine (docs/training.md)."""


def auto_size(accelerator: str = "auto") -> str:
    """The model size of ``--model auto`` (the default): ``paper`` where the run trains on a GPU
    (``--accelerator gpu``/``cuda``, or ``auto`` with CUDA present), :data:`CPU_SIZE` elsewhere."""
    return "paper" if accelerator_device(accelerator) == "cuda" else CPU_SIZE


def accelerator_device(accelerator: str = "auto") -> str:
    """The device type a Lightning ``accelerator`` trains on: ``cuda`` for ``gpu``/``cuda`` (and ``auto`` with
    CUDA present), ``cpu`` for ``cpu`` (and ``auto`` without CUDA), else the accelerator's own name."""
    import torch

    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return "cuda"
    return "cpu" if accelerator == "auto" else accelerator


def model_config(model: str, target: str, overrides: dict | None = None) -> BSRNNConfig:
    """A preset of :data:`bsrnn.model.SIZES` (``paper``, ``medium``, ``small``, ``tiny``) or a YAML file of
    :class:`BSRNNConfig` fields (``size:`` picks a base preset); ``auto`` is resolved by the caller
    (:func:`auto_size`)."""
    overrides = {k: v for k, v in (overrides or {}).items() if k in MODEL_KEYS}
    if model in SIZES:
        base: dict = dict(SIZES[model])
    else:
        path = Path(model)
        if not path.is_file():
            raise StemcurateError(f"--model {model}: not a preset ({', '.join(SIZES)}) and no such YAML file")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise StemcurateError(f"{path}: not a YAML text file ({str(exc).splitlines()[0][:120]})") from None
        except OSError as exc:
            raise StemcurateError(f"{path}: cannot read ({exc.strerror})") from None
        if data is None:
            raise StemcurateError(f"{path}: empty; expected a mapping of model hyperparameters (e.g. size: tiny)")
        if not isinstance(data, dict):
            raise StemcurateError(f"{path}: expected a mapping of model hyperparameters")
        size = data.pop("size", None)
        if size is not None and size not in SIZES:
            raise StemcurateError(f"{path}: size must be {', '.join(SIZES)} (got {size!r})")
        unknown = sorted(set(data) - MODEL_KEYS)
        if unknown:
            raise StemcurateError(f"{path}: unknown model hyperparameter(s) {', '.join(unknown)}")
        base = {**(SIZES[size] if size else {}), **data}
    args = {"target": target, **base, **overrides}
    try:
        return BSRNNConfig(**args)
    except (TypeError, ValueError) as exc:
        raise StemcurateError(f"model configuration: {exc}") from None


def train_config(overrides: dict | None = None, **explicit) -> TrainConfig:
    """:class:`TrainConfig` from ``--set`` overrides (training keys) and explicit CLI options (which win)."""
    args = {k: v for k, v in (overrides or {}).items() if k in TRAIN_KEYS}
    args.update({k: v for k, v in explicit.items() if v is not None})
    try:
        return TrainConfig(**args)
    except TypeError as exc:
        raise StemcurateError(f"training settings: {exc}") from None


def config_dict(model: BSRNNConfig, train: TrainConfig) -> dict:
    """The run's resolved configuration as plain data (what ``config.yaml`` holds)."""
    return {"model": asdict(model), "train": asdict(train)}


def model_differences(a: BSRNNConfig, b: BSRNNConfig) -> list[str]:
    """``["fc_dim: 32 != 128", ...]`` for every model hyperparameter that differs."""
    da, db = asdict(a), asdict(b)
    return [f"{k}: {da[k]!r} != {db[k]!r}" for k in da if da[k] != db[k]]
