"""The one home of BSRNN model files: how they are written, read, and which paths are a model.

Two layouts are models, both read with ``torch.load(weights_only=True)`` (no pickled code runs):

- an **exported** checkpoint ``{"hparams", "state_dict"}`` (:func:`save_model`;
  ``saved_models/<target>/<target>.ckpt``, written by ``pipelines train``);
- a **Lightning** checkpoint of ``pipelines train`` (``RUN/checkpoints/best.ckpt`` or ``last.ckpt``:
  ``hyper_parameters["model"]`` and the ``model.`` weights of ``state_dict``, which hold the EMA
  weights when EMA is on).

A **model source** (``pipelines evaluate``, ``pipelines separate -c``, ``pipelines train
--init-from``, ``curate scan --separator``, :meth:`bsrnn.separator.Separator.from_checkpoint`) is any of

- a model file of either layout;
- a training run folder (``RUN`` with ``checkpoints/``): its ``best.ckpt``, else its ``last.ckpt``;
- a folder of exported models (``saved_models``): every ``<target>/<target>.ckpt`` in it, or the one
  in a ``<target>/`` folder.

Every problem (a missing or unloadable file, another layout, hyperparameters this BSRNN does not
have, NaN/inf weights, a file named for another target, two models of one target, an asked target
without a model) is a :class:`~bsrnn.errors.CheckpointError` naming the path.
"""

from __future__ import annotations

import os
from dataclasses import asdict, fields
from pathlib import Path

import torch

from bsrnn.errors import CheckpointError
from bsrnn.model import BSRNN, BSRNNConfig

RUN_CHECKPOINTS = ("checkpoints/best.ckpt", "checkpoints/last.ckpt")
"""A training run folder's checkpoints, in the order one is taken as the run's model."""

DEFAULT_MODELS = Path("saved_models")
"""Where models are looked for when no source is named."""


def load_file(
    path: str | os.PathLike, *, what: str = "checkpoint", map_location: str | torch.device = "cpu", mmap: bool = False
):
    """The object stored in the torch file ``path`` (tensors, dicts, lists, numbers and strings only:
    ``weights_only=True``). ``mmap``: tensors are mapped from the file, not read, until used (for a look
    at a checkpoint's step or hyperparameters). :class:`CheckpointError` naming ``path`` (and ``what`` it
    should be) when it is a folder, missing, or not loadable."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a {what} file")
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as exc:  # unpickling errors come in many types
        raise CheckpointError(f"{path}: not a loadable {what} ({type(exc).__name__})") from None


def save_model(model: BSRNN, path: str | os.PathLike) -> Path:
    """Write ``model``'s hyperparameters and weights to ``path`` (the exported layout)."""
    path = Path(path)
    with open(path, "wb") as fh:  # closed on a failed write too (torch's own writer keeps its file open)
        torch.save({"hparams": asdict(model.config), "state_dict": model.state_dict()}, fh)
    return path


def check_finite(state: dict, path: str | os.PathLike) -> None:
    """:class:`CheckpointError` naming ``path`` when a weight tensor of ``state`` holds NaN or inf
    (a diverged run): such a model writes NaN audio."""
    bad = [k for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(
            f"{path}: {len(bad)} of {len(state)} weight tensors hold NaN/inf (a diverged run?), e.g. {bad[0]}"
        )


def read_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> tuple[BSRNNConfig, dict]:
    """Hyperparameters and weights of one model file of either layout (see the module docstring)."""
    ckpt = load_file(path, map_location=map_location)
    if (
        isinstance(ckpt, dict)
        and isinstance(ckpt.get("hyper_parameters"), dict)
        and isinstance(ckpt.get("state_dict"), dict)
    ):
        hp = ckpt["hyper_parameters"].get("model")
        state = {k[len("model.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    elif isinstance(ckpt, dict) and "hparams" in ckpt and isinstance(ckpt.get("state_dict"), dict):
        hp, state = ckpt["hparams"], ckpt["state_dict"]
    else:
        raise CheckpointError(f"{path}: not a BSRNN checkpoint (no hyperparameters and state dict)")
    if not isinstance(hp, dict):
        raise CheckpointError(f"{path}: not a BSRNN checkpoint (no model hyperparameters)")
    known = {f.name for f in fields(BSRNNConfig)}
    unknown, missing = sorted(set(hp) - known), sorted(known - set(hp))
    if unknown or missing:
        raise CheckpointError(
            f"{path}: hyperparameters do not match this BSRNN (unknown: {unknown or 'none'}; missing: "
            f"{missing or 'none'})"
        )
    check_finite(state, path)
    try:
        return BSRNNConfig(**hp), state
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: hyperparameters do not rebuild a BSRNN ({str(exc).splitlines()[0][:200]})"
        ) from None


def build_model(config: BSRNNConfig, state: dict, path: str | os.PathLike) -> BSRNN:
    """A model of ``config`` with the weights ``state`` read from ``path`` (named in the error)."""
    try:
        model = BSRNN(config)
        model.load_state_dict(state)
    except (ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: {str(exc).splitlines()[0][:200]}") from None
    return model


def load_model(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> BSRNN:
    """The model in one model file, in eval mode on ``map_location``."""
    return build_model(*read_checkpoint(path, map_location=map_location), path).to(map_location).eval()


def saved_model_files(folder: str | os.PathLike) -> list[Path]:
    """The exported models of a ``saved_models``-style folder: ``<target>/<target>.ckpt``, sorted."""
    return [f for f in sorted(Path(folder).glob("*/*.ckpt")) if f.stem == f.parent.name]


def run_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The model file of a training run folder (``checkpoints/best.ckpt``, else ``last.ckpt``), or None."""
    for name in RUN_CHECKPOINTS:
        f = Path(folder) / name
        if f.is_file():
            return f
    return None


def model_files(source: str | os.PathLike) -> list[Path]:
    """The model files one source names (see the module docstring); nothing is loaded here."""
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise CheckpointError(f"{source}: model not found (no such file or folder)")
    ckpt = run_checkpoint(source)
    if ckpt is not None:
        return [ckpt]
    own = source / f"{source.name}.ckpt"
    files = [own] if own.is_file() else saved_model_files(source)
    if not files:
        raise CheckpointError(
            f"{source}: no model here (an exported <target>.ckpt, a training run folder, "
            "a Lightning checkpoint or a folder of <target>/<target>.ckpt)"
        )
    return files


def load_models(
    sources, targets: list[str] | None = None, *, device: str | torch.device = "cpu", default: Path = DEFAULT_MODELS
) -> dict[str, tuple[Path, BSRNN]]:
    """``{target: (file, model)}`` for the models the sources name, in eval mode on ``device``.

    ``sources``: one model source or a list of them (None or empty: ``default``, the ``saved_models``
    folder). ``targets``: keep only these; a file named directly that holds another target, or an
    asked target that no source has, is an error. Two models of one target are an error naming both
    files. :class:`~bsrnn.errors.DeviceError` for a device this machine lacks.
    """
    from bsrnn.separator import torch_device

    torch_device(device)
    if isinstance(targets, str):
        targets = [targets]
    if targets is not None and not (isinstance(targets, (list, tuple)) and all(isinstance(t, str) for t in targets)):
        raise CheckpointError(f"targets {targets!r}: give a target name or a list of them")
    if sources is None or isinstance(sources, (list, tuple)) and not sources:
        if not Path(default).is_dir():
            raise CheckpointError(f"{default}: no trained models; train one with `pipelines train` or name a model")
        sources = [default]
    elif isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    elif not isinstance(sources, (list, tuple)) or not all(isinstance(s, (str, os.PathLike)) for s in sources):
        raise CheckpointError(f"{sources!r}: give a model path or a list of them")
    models: dict[str, tuple[Path, BSRNN]] = {}
    for source in map(Path, sources):
        for f in model_files(source):
            cfg, state = read_checkpoint(f)
            if f.stem == f.parent.name and f.stem != cfg.target:  # <target>/<target>.ckpt names what it holds
                raise CheckpointError(
                    f"{f}: holds a '{cfg.target}' model but is named '{f.stem}'; move it to "
                    f"{cfg.target}/{cfg.target}.ckpt"
                )
            if targets and cfg.target not in targets:
                if f == source:
                    raise CheckpointError(f"{f}: a '{cfg.target}' model, asked for {', '.join(targets)}")
                continue
            if cfg.target in models:
                raise CheckpointError(f"{f}: a second '{cfg.target}' model (the first is {models[cfg.target][0]})")
            models[cfg.target] = (f, build_model(cfg, state, f).to(device).eval())
    missing = [t for t in targets or [] if t not in models]
    if missing:
        names = ", ".join(map(str, sources))
        raise CheckpointError(
            f"{names}: no model for {', '.join(missing)}" + (f" (has {', '.join(models)})" if models else "")
        )
    if not models:
        raise CheckpointError(f"{', '.join(map(str, sources))}: no model")
    return models
