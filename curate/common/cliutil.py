"""Shared plumbing of the ``curate`` and ``pipelines`` command lines."""

from __future__ import annotations

import functools
import math
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from bsrnn.errors import BSRNNError
from curate.common.errors import StemcurateError

EXIT_BAD_INPUT = 2
err_console = Console(stderr=True, markup=False, soft_wrap=True)  # names print literally ('[live]' is not markup),
# and a message is one line in a log however long it is
out_console = Console(soft_wrap=True, markup=False)  # paths are never broken across lines


RESUMABLE = "finished work is kept; run the same command again to resume"


def guarded(fn=None, *, interrupted: str = RESUMABLE):
    """Turn :class:`StemcurateError` (and the model package's :class:`~bsrnn.errors.BSRNNError`) into a one-line
    message and exit code 2, and an interrupt into
    ``interrupted: <interrupted>`` (or the interrupt's own ``resume_hint()``) and exit code 130. A NaN or infinite
    number given to any option is
    such an error before the command runs. Use as ``@guarded`` or ``@guarded(interrupted=...)``."""
    if fn is None:
        return functools.partial(guarded, interrupted=interrupted)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            for name, value in kwargs.items():  # --threshold nan, --hop inf: no option of any command takes them
                if isinstance(value, float) and not math.isfinite(value):
                    raise StemcurateError(f"--{name.replace('_', '-')}: must be a finite number, got {value}")
            return fn(*args, **kwargs)
        except (StemcurateError, BSRNNError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except KeyboardInterrupt as exc:  # one that knows how to go on (a training run) says so itself
            hint = exc.resume_hint() if hasattr(exc, "resume_hint") else interrupted
            print(f"interrupted: {hint}", file=sys.stderr)
            raise typer.Exit(130) from None

    return wrapper


def make_app(name: str, help: str) -> typer.Typer:
    """A Typer app with the project's conventions: help on no arguments, plain errors, no completion."""
    return typer.Typer(
        name=name,
        help=help,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        rich_markup_mode=None,
    )  # usage errors as click prints them: one "Error: ..." line, no box


def invoke(app: typer.Typer, args: list[str] | None = None) -> None:
    """Run ``app`` as a console script (``args``: the command line, default ``sys.argv[1:]``) and exit with its
    code. The option parser's usage errors (an unknown option or command, a value out of range, a missing
    argument) are one line, ``error: <command>: <what>``, exit code 2, as every other bad input; help, and
    no arguments (which print help), are as click prints them."""
    try:  # typer from 0.2x carries its own copy of click, and raises its exceptions (Abort: typer's own)
        from typer._click import exceptions as parser
        from typer.exceptions import Abort
    except ImportError:  # pragma: no cover - older typer, on click itself
        from click import exceptions as parser
        from click.exceptions import Abort

    try:
        code = app(args=args, standalone_mode=False)
    except parser.NoArgsIsHelpError as exc:
        exc.show()
        code = exc.exit_code
    except parser.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else app.info.name
        print(f"error: {where}: {exc.format_message()}", file=sys.stderr)
        code = EXIT_BAD_INPUT
    except parser.ClickException as exc:
        print(f"error: {exc.format_message()}", file=sys.stderr)
        code = exc.exit_code
    except Abort:  # an interrupt while the parser prompts
        print("interrupted", file=sys.stderr)
        code = 130
    sys.exit(code if isinstance(code, int) else 0)


class _LazyProgress(Progress):
    """A :class:`~rich.progress.Progress` that appears at its first update, so that a command that
    stops on bad input before any work prints its one-line error without an empty bar above it."""

    def __enter__(self) -> "_LazyProgress":
        return self

    def _show(self) -> None:
        if not self.live.is_started:
            self.start()

    def update(self, *args, **kwargs) -> None:
        self._show()
        super().update(*args, **kwargs)

    def advance(self, *args, **kwargs) -> None:
        self._show()
        super().advance(*args, **kwargs)

    def stop(self) -> None:
        if self.live.is_started:  # rich prints a line break on stop even when nothing was shown
            super().stop()


ShowProgress = Annotated[
    bool, typer.Option("--progress/--no-progress", help="Show progress on stderr (--no-progress: silent).")
]
"""The ``--progress/--no-progress`` option of every long command."""


def progress_bar(show: bool = True) -> Progress:
    """A rich progress bar on stderr: description, bar, n/total, elapsed, remaining (shown from the
    first update on; nothing at all with ``show=False``)."""
    return _LazyProgress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[item]}", markup=False),
        console=err_console,
        disable=not show,
    )


def parse_list(value: str | None, option: str) -> list[str] | None:
    """``"a,b, c"`` -> ``["a", "b", "c"]``; None stays None; an empty list is a bad-input error."""
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise StemcurateError(f"{option}: empty list")
    return items
