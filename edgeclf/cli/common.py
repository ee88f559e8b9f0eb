"""Shared pieces of the command line: consoles, escaping, shared options, progress bars,
logging, error handling and the exit-code rule.

Names are data, never markup: every string that comes from the user's files, folders,
models, labels, exceptions or package names goes through :func:`esc` before it is put into
a Rich markup string (messages, progress descriptions, ``Next:`` hints), and table cells
are plain text unless the project's own code marks them up (:func:`styled`).

Exit codes, the same for every command (README, "When something goes wrong"):
``0`` success; ``1`` a failure: a result below its budget, a failed item (parity breach,
export failure row, bench failed row, unreadable predict input) or an error; ``2`` bad usage:
an unknown option, a bad option value or configuration (:class:`ConfigError`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import sys
from typing import Annotated, Any, Callable, Iterator, Sequence

import typer
from rich.console import Console, ConsoleDimensions
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.table import Table
from rich.text import Text

from edgeclf.errors import ConfigError, EdgeclfError
from edgeclf.progress import Progress as LibraryProgress

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

#: Width of the console when the output is not a terminal: tables print at their natural
#: width and lines never wrap (a pipe or a log file has no width to fit).
PIPE_WIDTH = 4096

# C0/C1 control characters (newline and tab kept) and the invisible bidi overrides/isolates
# that reorder what follows them: shown as escapes, never sent to the terminal.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def shown(value: object) -> str:
    """``value`` as edgeclf prints it: unchanged, except control characters, made visible
    as ``\\x1b``-style escapes (an escape sequence in a file name must not drive the
    terminal)."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"),
                        str(value))


def esc(value: object) -> str:
    """A user-controlled string (file, folder, class, label, path, exception text, package
    name), ready to go into a Rich markup string: printed exactly as :func:`shown` gives it."""
    return escape(shown(value))


def styled(text: str, style: str) -> Text:
    """A table cell in the project's own style, e.g. ``styled("failed", "red")``."""
    return Text(shown(text), style=style)


class _Console(Console):
    """A Console that is wide when its output is not a terminal (unless COLUMNS says
    otherwise), so piped tables never wrap into narrow columns."""

    @property
    def size(self) -> ConsoleDimensions:
        if self._width is None and not self.is_terminal and "COLUMNS" not in os.environ:
            return ConsoleDimensions(PIPE_WIDTH, super().size.height)
        return super().size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


# emoji=False: ":cat:" in a class name stays ":cat:".
console = _Console(emoji=False)
err_console = _Console(stderr=True, emoji=False)

#: ``--json`` of every command that produces a result: the result on stdout, as JSON.
JsonOption = Annotated[bool, typer.Option(
    "--json", help="Print the result as JSON on stdout (messages go to stderr).")]


def comma_list(values: str | Sequence[str] | None, *, lower: bool = False
               ) -> tuple[str, ...] | None:
    """``"a,b"`` or ``["a", "b,c"]`` (a repeatable option) -> ``("a", "b", "c")``; None or
    nothing -> None."""
    if values is None:
        return None
    items = [values] if isinstance(values, str) else list(values)
    parts = [p.strip() for v in items for p in v.split(",")]
    out = tuple(p.lower() if lower else p for p in parts if p)
    return out or None


def parse_ints(text: str | None, option: str) -> tuple[int, ...] | None:
    """``"1,8,32"`` -> ``(1, 8, 32)``; anything else is a ConfigError naming the option."""
    if text is None:
        return None
    try:
        values = tuple(int(v) for v in comma_list(text) or ())
    except ValueError:
        raise ConfigError(f"{option} takes comma-separated integers, e.g. 1,8,32; got "
                          f"{text!r}") from None
    if not values:
        raise ConfigError(f"{option} is empty")
    return values


class _LogHandler(logging.Handler):
    """edgeclf's log records on stderr as plain text (never markup), one line each."""

    STYLES = {logging.WARNING: "yellow", logging.ERROR: "red", logging.CRITICAL: "red"}

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = shown(record.getMessage())
            if self.verbose:
                message = f"{record.levelname} {record.name}: {message}"
            elif record.levelno >= logging.WARNING:
                message = f"{record.levelname.lower()}: {message}"
            style = self.STYLES.get(record.levelno, "dim")
            err_console.print(Text(message, style=style), soft_wrap=True, highlight=False)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def setup_logging(verbose: bool = False) -> None:
    root = logging.getLogger("edgeclf")
    for h in [h for h in root.handlers if isinstance(h, _LogHandler)]:
        root.removeHandler(h)
    root.addHandler(_LogHandler(verbose))
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False


def print_error(message: object) -> None:
    err_console.print(f"[bold red]Error:[/] {esc(message)}", highlight=False, soft_wrap=True)


def handle_errors(fn: Callable) -> Callable:
    """Turn edgeclf's typed errors into ``Error: ...``: exit 2 for bad usage
    (:class:`ConfigError`), 1 for any other error."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EdgeclfError as e:
            print_error(e)
            raise typer.Exit(EXIT_USAGE if isinstance(e, ConfigError) else EXIT_FAILED) from None
    return wrapper


def fail(message: object) -> None:
    """A failed item (or a result below its budget): ``Error: ...`` and exit 1."""
    print_error(message)
    raise typer.Exit(EXIT_FAILED)


def _progress(transient: bool) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=err_console,
                    transient=transient)


@contextlib.contextmanager
def progress_bar(description: str, *, transient: bool = False
                 ) -> Iterator[Callable[..., None]]:
    """Yield ``update(done, total, description=None)`` driving one Rich progress bar;
    descriptions are escaped (they often hold file names)."""
    with _progress(transient) as progress:
        task = progress.add_task(esc(description), total=None)

        def update(done: int, total: int, description: str | None = None) -> None:
            extra = {} if description is None else {"description": esc(description)}
            progress.update(task, completed=done, total=total, **extra)

        yield update


@contextlib.contextmanager
def stage_bars(*, transient: bool = False) -> Iterator[LibraryProgress]:
    """Yield a library progress callback, ``update(done, total, stage)``: one progress bar per
    stage name (escaped)."""
    with _progress(transient) as progress:
        tasks: dict[str, Any] = {}

        def update(done: int, total: int, stage: str) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(esc(stage), total=total)
            progress.update(tasks[stage], completed=done, total=total)

        yield update


def print_json(data: Any) -> None:
    """``data`` as JSON on stdout: coloured on a terminal, plain text otherwise."""
    text = json.dumps(data, default=str, indent=2, ensure_ascii=False)
    if console.is_terminal:
        console.print_json(text)
    else:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> Table:
    """A table whose title (the project's markup, with names escaped by the caller) and
    cells are printed as given: cells are plain text (``str``), or :func:`styled`."""
    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*[v if isinstance(v, Text) else Text(shown(v)) for v in r])
    return t


def note(text: str) -> None:
    """A message about the result (``Wrote ...``), on stderr so stdout stays the result;
    ``text`` is the project's markup with names already escaped."""
    err_console.print(text, highlight=False, soft_wrap=True)


def refresh_report(run_dir: Any) -> None:
    """After a command changed a run, rewrite its ``report.html`` (stages never import the
    report; a folder that is not a run is skipped, and a failure only logs a warning)."""
    from edgeclf.report.html import refresh_report as refresh

    refresh(run_dir)


def next_step(command: str) -> None:
    """The ``Next:`` hint; ``command`` is plain text (it holds user paths)."""
    err_console.print(f"[dim]Next:[/] [bold]{esc(command)}[/]", highlight=False,
                      soft_wrap=True)
