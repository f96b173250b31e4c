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

    bad = [f"{f.name}={getattr(config, f.name)}" for f in fields(config)
           if isinstance(getattr(config, f.name), float) and not math.isfinite(getattr(config, f.name))]
    if bad:
        raise StemcurateError(f"{what}: {', '.join(bad)} must be finite numbers")
