"""The training run folder: its layout, its saved settings, and the rules for starting and resuming one.

``pipelines train --out RUN`` writes::

    RUN/config.yaml              resolved model and training settings, the manifest and its digest, the tracks
    RUN/checkpoints/last.ckpt    Lightning checkpoint, every few steps and on Ctrl-C (what --resume continues)
    RUN/checkpoints/best.ckpt    best validation uSDR (with validation tracks)
    RUN/logs/metrics.csv         CSVLogger (and logs/hparams.yaml; tb/ when tensorboard is installed)
    RUN/summary.json             figures of the finished run
    RUN/results.parquet          pipelines evaluate (test.log beside it; results_SUBSET.parquet for another subset)
    RUN/run_report.html          pipelines report

Every command that reads or writes a run goes through :class:`RunDir`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from bsrnn.checkpoint import RUN_CHECKPOINTS, load_file, load_models
from bsrnn.model import BSRNNConfig
from curate.common.errors import StemcurateError
from curate.common.outputs import output_path
from pipelines.config import (
    MODEL_KEYS,
    TRAIN_KEYS,
    TrainConfig,
    auto_size,
    model_config,
    model_differences,
    train_config,
)

RESUME_MAY_CHANGE = ("max_steps", "num_workers", "val_every")
"""Settings a resumed run may change (a longer run, other loader workers, another validation interval)."""

SIZE_KEYS = ("fc_dim", "rnn_dim", "num_layers", "mlp_dim")
"""The settings that make a model size (:data:`bsrnn.model.SIZES`)."""


@dataclass(frozen=True)
class RunDir:
    """A training run folder (see the module docstring for its layout)."""

    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", output_path(self.path))

    config_file = property(lambda self: self.path / "config.yaml")
    checkpoints = property(lambda self: self.path / "checkpoints")
    last = property(lambda self: self.path / RUN_CHECKPOINTS[1])
    best = property(lambda self: self.path / RUN_CHECKPOINTS[0])
    logs = property(lambda self: self.path / "logs")
    metrics_csv = property(lambda self: self.path / "logs" / "metrics.csv")
    summary = property(lambda self: self.path / "summary.json")
    report = property(lambda self: self.path / "run_report.html")

    def results(self, subset: str = "test") -> Path:
        """Where ``pipelines evaluate`` writes its results on ``subset`` (another subset never replaces the test
        results)."""
        return self.path / ("results.parquet" if subset == "test" else f"results_{subset}.parquet")

    def clear_partial_writes(self) -> list[Path]:
        """Remove the temporary files that a run killed while writing (a checkpoint, its config, its logs) left
        beside them (``.NAME.XXXXXXXX.tmp``, :func:`~curate.common.atomic.atomic_path`); the files they were to
        replace are whole. Returns what was removed. Called when a run starts or resumes: one run per folder."""
        gone = []
        for folder in (self.path, self.checkpoints, self.logs):
            if folder.is_dir():
                for p in folder.glob(".*.tmp"):
                    if p.is_file():
                        p.unlink(missing_ok=True)
                        gone.append(p)
        return gone

    def is_run(self) -> bool:
        """Whether the folder holds a run's ``config.yaml``."""
        return self.config_file.is_file()

    def load_config(self) -> tuple[BSRNNConfig, TrainConfig, dict]:
        """``(model config, training config, the rest of config.yaml)``; the rest holds ``manifest``,
        ``manifest_digest``, ``export_dir``, ``init_from``, ``train_tracks``, ``valid_tracks``."""
        if not self.is_run():
            raise StemcurateError(f"{self.path}: not a training run folder (no {self.config_file.name})")
        try:
            data = yaml.safe_load(self.config_file.read_text())
            train = data.pop("train")
            if isinstance(train, dict) and "schedule" not in train:  # a run from before the schedule setting
                train["schedule"] = "seed"
            return BSRNNConfig(**data.pop("model")), TrainConfig(**train), data
        except (yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError, OSError) as exc:
            raise StemcurateError(f"{self.config_file}: unreadable run configuration ({exc})") from None

    def check_new(self) -> None:
        """A new run's folder must be new, empty, or a run that stopped before its first checkpoint (its
        ``config.yaml`` and logs are then replaced); :class:`StemcurateError` otherwise, before any work."""
        run = self.path
        if run.exists() and not run.is_dir():
            raise StemcurateError(f"{run}: exists and is a file; --out is the run folder")
        if not run.is_dir() or not any(run.iterdir()):
            return
        if self.checkpoints.is_dir() and any(self.checkpoints.iterdir()):
            raise StemcurateError(f"{run}: already holds a run; use --resume to continue it or another --out")
        if not self.is_run():
            raise StemcurateError(
                f"{run}: exists and is not a training run folder; refusing to write into it "
                "(choose a new or empty --out)"
            )

    def resume_step(self) -> int:
        """The global step ``last.ckpt`` holds; :class:`StemcurateError` when there is nothing to resume."""
        if not self.last.is_file():
            raise StemcurateError(f"{self.path}: nothing to resume (no {RUN_CHECKPOINTS[1]})")
        state = load_file(self.last, mmap=True)  # the step only: the weights stay on disk
        return int(state.get("global_step", 0)) if isinstance(state, dict) else 0

    def check_resume(self, now: dict) -> None:
        """:class:`StemcurateError` when the manifest's fragments, the tracks or the settings in ``now``
        (what ``config.yaml`` would hold) differ from those the run started with; only
        :data:`RESUME_MAY_CHANGE` may, and ``max_steps`` must lie beyond the step reached."""
        try:
            before = yaml.safe_load(self.config_file.read_text()) or {}
        except (OSError, yaml.YAMLError):
            raise StemcurateError(
                f"{self.path}: cannot resume: {self.config_file.name} is missing or unreadable"
            ) from None
        now = yaml.safe_load(yaml.safe_dump(now, sort_keys=False))  # compared as config.yaml holds it
        changes = []
        if before.get("manifest_digest") not in (None, now["manifest_digest"]):
            changes.append("the manifest's fragments (re-scanned or filtered since)")
        for key in ("train_tracks", "valid_tracks"):
            if before.get(key) is not None and before[key] != now[key]:
                changes.append(key.replace("_", " "))
        for part in ("model", "train"):
            old, new = before.get(part) or {}, now[part]
            changes += [
                f"{part}.{k}: {old[k]!r} -> {new[k]!r}"
                for k in new
                if k in old and old[k] != new[k] and k not in RESUME_MAY_CHANGE
            ]
        if changes:
            raise StemcurateError(
                f"{self.path}: cannot resume, changed since the run started: {'; '.join(changes)} (train into "
                f"another --out)"
            )


def run_folder(sources) -> RunDir | None:
    """The training run when ``sources`` is exactly one run folder (it has ``config.yaml``), else None:
    its data and results location are then the defaults of ``pipelines evaluate``."""
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    if not sources or len(sources) != 1:
        return None
    run = RunDir(Path(sources[0]))
    return run if run.is_run() else None


def manifest_digest(m) -> str:
    """SHA-1 of what a run learns from: every fragment's track, stem, file, bounds and quality."""
    cols = [c for c in ("track", "stem", "path", "start", "end", "quality") if c in m.frame.columns]
    return hashlib.sha1(m.frame[cols].to_csv(index=False).encode()).hexdigest()


@dataclass
class RunSettings:
    """What :func:`pipelines.train.train` is given for one run, resolved from the command line."""

    manifest: Path
    model: BSRNNConfig
    train: TrainConfig
    export_dir: Path


def new_run_settings(
    *,
    target: str | None,
    model: str | None,
    manifest: Path | None,
    overrides: dict,
    init_from: Path | None,
    export_dir: Path | None,
    accelerator: str = "auto",
    **train_options,
) -> RunSettings:
    """Settings of a new run: ``--model`` (a preset, ``auto`` or a YAML file; default ``auto``: the size for
    ``accelerator``, :func:`pipelines.config.auto_size`; with ``init_from`` and no size asked for, the size of
    that model) with ``overrides`` (``--set``), and ``train_options`` (the training options given; None for
    those not given)."""
    target, manifest = target or "vocals", manifest or Path("clean.parquet")
    if init_from is not None and model is None and not any(k in overrides for k in SIZE_KEYS):
        model_cfg = load_models(init_from, [target])[target][
            1
        ].config  # the checkpoint's own size unless one is asked for
    else:
        try:
            model_cfg = model_config(auto_size(accelerator) if model in (None, "auto") else model, target, overrides)
        except StemcurateError:
            _check_target_in(manifest, target)  # a target the manifest lacks is the first thing to say
            raise
    return RunSettings(
        manifest, model_cfg, train_config(overrides, **train_options), export_dir or Path("saved_models")
    )


def _check_target_in(manifest: Path, target: str) -> None:
    """Raise :class:`StemcurateError` when ``manifest`` cannot be read (its own error) or holds no fragment of
    ``target``."""
    from curate.data.schema import read_manifest

    stems = set(read_manifest(manifest).frame["stem"])
    if stems:
        check_target(manifest, stems, target)


def check_target(manifest: Path, stems: set[str], target: str) -> None:
    """Raise :class:`StemcurateError` naming ``manifest`` when its ``stems`` do not include ``target``."""
    if target not in stems:
        raise StemcurateError(f"{manifest}: no fragments of target '{target}' (stems: {', '.join(sorted(stems))})")


def _same(a, b) -> bool:
    """Equal as ``config.yaml`` holds them (tuples as lists)."""
    return yaml.safe_load(yaml.safe_dump(a)) == yaml.safe_load(yaml.safe_dump(b))


def resumed_run_settings(
    run: RunDir,
    *,
    target: str | None,
    model: str | None,
    manifest: Path | None,
    init_from: Path | None,
    overrides: dict,
    options: dict,
    export_dir: Path | None,
) -> RunSettings:
    """Settings of a resumed run: its own. ``options`` (training options given on the command line,
    None for those not given), ``overrides`` (``--set``), ``model``, ``manifest`` and ``init_from`` may
    repeat what the run started with; only :data:`RESUME_MAY_CHANGE` may change (anything else is
    refused, named in the error)."""
    model_cfg, train_cfg, saved = run.load_config()
    if target is not None and target != model_cfg.target:
        raise StemcurateError(f"{run.path}: a '{model_cfg.target}' run, asked to resume --target {target}")
    unknown = sorted(k for k in overrides if k not in MODEL_KEYS and k not in TRAIN_KEYS)
    if unknown:
        raise StemcurateError(f"--set {unknown[0]}: not a model or training setting")
    changed = []
    if manifest is not None and Path(manifest).resolve() != Path(saved["manifest"]).resolve():
        changed.append("--manifest")
    if init_from is not None and str(init_from) != str(saved.get("init_from")):
        changed.append("--init-from")
    model_sets = {k: v for k, v in overrides.items() if k in MODEL_KEYS}
    if model not in (None, "auto"):  # auto: the size the run started with
        if model_differences(model_config(model, model_cfg.target, model_sets), model_cfg):
            changed.append("--model")
    else:
        changed += [f"--set {k}" for k, v in model_sets.items() if not _same(v, getattr(model_cfg, k))]
    asked = {k: v for k, v in options.items() if v is not None}
    changed += [
        f"--{k.replace('_', '-')}"
        for k, v in asked.items()
        if k not in RESUME_MAY_CHANGE and not _same(v, getattr(train_cfg, k))
    ]
    train_sets = {k: v for k, v in overrides.items() if k in TRAIN_KEYS}
    changed += [
        f"--set {k}"
        for k, v in train_sets.items()
        if k not in RESUME_MAY_CHANGE and not _same(v, getattr(train_cfg, k))
    ]
    if changed:
        raise StemcurateError(
            f"--resume continues {run.path} with the settings it started with; {', '.join(changed)} would change "
            f"them (only --max-steps, --num-workers and --set {', '.join(k + '=' for k in RESUME_MAY_CHANGE)} may); "
            "train into another --out (with --init-from) to change them"
        )
    changes = {k: v for k, v in {**asked, **train_sets}.items() if k in RESUME_MAY_CHANGE}
    try:
        train_cfg = replace(train_cfg, **changes)
    except (TypeError, ValueError) as exc:
        raise StemcurateError(f"--set: {exc}") from None
    return RunSettings(
        Path(saved["manifest"]), model_cfg, train_cfg, export_dir or Path(saved.get("export_dir") or "saved_models")
    )
