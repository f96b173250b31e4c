"""User-facing errors: the CLIs print these as one line and exit with code 2."""


class StemcurateError(Exception):
    """A problem with the user's input (a path, a file, an option), not a bug.

    The message must name the file or option concerned and fit on one line.
    """
