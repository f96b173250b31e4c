"""Which paths are a model: the one rule of ``pipelines evaluate``, ``pipelines separate -c``,
``pipelines train --init-from`` and ``curate scan --separator``.

A model source is any of

- an exported checkpoint, ``saved_models/<target>/<target>.ckpt`` (``pipelines train`` writes it);
- a Lightning checkpoint of ``pipelines train``, ``RUN/checkpoints/best.ckpt`` or ``last.ckpt``;
- a training run folder (``RUN`` with ``checkpoints/``): its ``best.ckpt``, else its ``last.ckpt``;
- a folder of exported models (``saved_models``): every ``<target>/<target>.ckpt`` in it, or the
  one in a ``<target>/`` folder.

Files are read by :func:`bsrnn.model.read_checkpoint` (``weights_only``; NaN/inf weights refused).
A source that is none of these, two models of one target, or an asked target without a model is a
:class:`StemcurateError` naming the path.
"""

from __future__ import annotations

from pathlib import Path

from bsrnn.model import BSRNN, BSRNNConfig, CheckpointError, read_checkpoint, saved_model_files
from curate.errors import StemcurateError

RUN_CHECKPOINTS = ("best.ckpt", "last.ckpt")
"""A run folder's checkpoints, in the order one is taken as the run's model."""

DEFAULT_MODELS = Path("saved_models")


def run_checkpoint(folder: str | Path) -> Path | None:
    """The model file of a training run folder (``checkpoints/best.ckpt``, else ``last.ckpt``), or None."""
    for name in RUN_CHECKPOINTS:
        f = Path(folder) / "checkpoints" / name
        if f.is_file():
            return f
    return None


def run_folder(sources: list[str | Path] | str | Path | None) -> Path | None:
    """The training run folder when ``sources`` is exactly one run folder (it has ``config.yaml``), else
    None: its data and results location are then the defaults of ``pipelines evaluate``."""
    from pipelines.train import CONFIG_FILE

    if isinstance(sources, (str, Path)):
        sources = [sources]
    if not sources or len(sources) != 1:
        return None
    return Path(sources[0]) if (Path(sources[0]) / CONFIG_FILE).is_file() else None


def model_files(source: str | Path) -> list[Path]:
    """The model files one source names (see the module docstring); nothing is loaded here.

    :class:`StemcurateError` when ``source`` does not exist or names no model.
    """
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise StemcurateError(f"{source}: model not found (no such file or folder)")
    ckpt = run_checkpoint(source)
    if ckpt is not None:
        return [ckpt]
    own = source / f"{source.name}.ckpt"
    files = [own] if own.is_file() else saved_model_files(source)
    if not files:
        raise StemcurateError(f"{source}: no model here (an exported <target>.ckpt, a training run folder, "
                              "a Lightning checkpoint or a folder of <target>/<target>.ckpt)")
    return files


def check_device(device) -> None:
    """:class:`StemcurateError` naming ``--device`` when this machine has no such device
    (:func:`bsrnn.separator.torch_device`)."""
    from bsrnn.separator import torch_device

    try:
        torch_device(device)
    except ValueError as exc:
        raise StemcurateError(f"--device {device}: {exc}") from None


def read_model(path: str | Path) -> tuple[BSRNNConfig, dict]:
    """:func:`~bsrnn.model.read_checkpoint` with its errors as :class:`StemcurateError`."""
    try:
        return read_checkpoint(path)
    except CheckpointError as exc:
        raise StemcurateError(str(exc)) from None


def load_models(sources: list[str | Path] | str | Path | None, targets: list[str] | None = None, *,
                device: str = "cpu", default: Path = DEFAULT_MODELS) -> dict[str, tuple[Path, BSRNN]]:
    """``{target: (file, model)}`` for the models the sources name, in eval mode on ``device``.

    ``sources``: model sources (None or empty: ``default``, the ``saved_models`` folder).
    ``targets``: keep only these; a file named directly that holds another target, or an asked target
    that no source has, is an error. Two models of one target are an error naming both files.
    """
    check_device(device)
    if sources is None or isinstance(sources, (list, tuple)) and not sources:
        if not default.is_dir():
            raise StemcurateError(f"{default}: no trained models; train one with `pipelines train` or name a model")
        sources = [default]
    elif isinstance(sources, (str, Path)):
        sources = [sources]
    models: dict[str, tuple[Path, BSRNN]] = {}
    for source in map(Path, sources):
        for f in model_files(source):
            cfg, state = read_model(f)
            if f.stem == f.parent.name and f.stem != cfg.target:  # <target>/<target>.ckpt names what it holds
                raise StemcurateError(f"{f}: holds a '{cfg.target}' model but is named '{f.stem}'; move it to {cfg.target}/{cfg.target}.ckpt")
            if targets and cfg.target not in targets:
                if f == source:
                    raise StemcurateError(f"{f}: a '{cfg.target}' model, asked for {', '.join(targets)}")
                continue
            if cfg.target in models:
                raise StemcurateError(f"{f}: a second '{cfg.target}' model (the first is {models[cfg.target][0]})")
            try:
                model = BSRNN(cfg)
                model.load_state_dict(state)
            except (ValueError, RuntimeError) as exc:
                raise StemcurateError(f"{f}: {str(exc).splitlines()[0][:200]}") from None
            models[cfg.target] = (f, model.to(device).eval())
    missing = [t for t in targets or [] if t not in models]
    if missing:
        names = ", ".join(map(str, sources))
        raise StemcurateError(f"{names}: no model for {', '.join(missing)}" + (f" (has {', '.join(models)})" if models else ""))
    if not models:
        raise StemcurateError(f"{', '.join(map(str, sources))}: no model")
    return models
