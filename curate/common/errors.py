"""User-facing errors: the CLIs print these as one line and exit with code 2."""

MAX_SEED = 2**32 - 1
"""Seeds are 0 .. 2**32 - 1 (what numpy, torch and Lightning all take): every seed option and setting."""


class StemcurateError(Exception):
    """A problem with the user's input (a path, a file, an option), not a bug.

    The message must name the file or option concerned and fit on one line.
    """


def check_finite_fields(config, what: str) -> None:
    """:class:`StemcurateError` naming every float field of the dataclass ``config`` that is NaN or
    infinite (``what`` names the settings: ``check settings``); no setting of this project takes one."""
    import math
    from dataclasses import fields

    bad = [
        f"{f.name}={getattr(config, f.name)}"
        for f in fields(config)
        if isinstance(getattr(config, f.name), float) and not math.isfinite(getattr(config, f.name))
    ]
    if bad:
        raise StemcurateError(f"{what}: {', '.join(bad)} must be finite numbers")


def as_path(value, name: str):
    """``value`` as a :class:`~pathlib.Path`; :class:`StemcurateError` naming the argument ``name``
    when it is not a path (a string or ``os.PathLike``): the Python API's check of path arguments."""
    import os
    from pathlib import Path

    if not isinstance(value, (str, os.PathLike)) or isinstance(value, bytes):
        raise StemcurateError(f"{name} {value!r}: give a file or folder path")
    return Path(value)


def as_int(value, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int within ``[low, high]``; :class:`StemcurateError` naming ``name`` for
    another type (a float, a string, a bool) or a value out of range."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise StemcurateError(f"{name} {value!r}: give a whole number")
    if (low is not None and value < low) or (high is not None and value > high):
        bound = (
            f"{low} to {high}"
            if low is not None and high is not None
            else (f"{low} or more" if low is not None else f"at most {high}")
        )
        raise StemcurateError(f"{name} {value}: must be {bound}")
    return int(value)


def as_number(value, name: str) -> float:
    """``value`` as a finite float; :class:`StemcurateError` naming ``name`` for another type, NaN or inf."""
    import math
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise StemcurateError(f"{name} {value!r}: give a finite number")
    return float(value)
