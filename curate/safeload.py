"""Loading checkpoint files without executing pickled code (``torch.load(..., weights_only=True)``)."""

from __future__ import annotations

from pathlib import Path

import torch

from curate.errors import StemcurateError


def torch_load(path: str | Path, *, what: str = "checkpoint", error: type[Exception] = StemcurateError):
    """The object stored in ``path`` (tensors, dicts, lists, numbers, strings only) on the CPU.

    Raises ``error`` with a one-line message naming the file when it is missing or not loadable.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {what} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise error(f"{path}: not a loadable {what} ({type(exc).__name__})") from None
