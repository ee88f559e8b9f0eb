"""Shared pieces of the command line: console, progress bars, error handling."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from typing import Any, Callable, Iterator

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.table import Table

from edgeclf.errors import EdgeclfError

console = Console()
err_console = Console(stderr=True)


def setup_logging(verbose: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    root = logging.getLogger("edgeclf")
    if not root.handlers:
        handler = RichHandler(console=err_console, show_path=False, show_time=False,
                              markup=False, rich_tracebacks=False)
        root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


def handle_errors(fn: Callable) -> Callable:
    """Turn edgeclf's typed errors into ``Error: ...`` and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EdgeclfError as e:
            err_console.print(f"[bold red]Error:[/] {e}", highlight=False, markup=True,
                              soft_wrap=True)
            raise typer.Exit(1) from None
    return wrapper


@contextlib.contextmanager
def progress_bar(description: str, *, transient: bool = False) -> Iterator[Callable[[int, int], None]]:
    """Yield a ``callback(done, total)`` that drives a Rich progress bar."""
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=err_console,
                  transient=transient) as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


def print_json(data: Any) -> None:
    console.print_json(json.dumps(data, default=str))


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> Table:
    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*[str(v) for v in r])
    return t


def next_step(text: str) -> None:
    console.print(f"[dim]Next:[/] [bold]{text}[/]")


def refresh_report(run_dir: Any) -> None:
    """After a command changed a run, rewrite its ``report.html`` (stages never import the
    report; a folder that is not a run is skipped, and a failure only logs a warning)."""
    from edgeclf.report.html import refresh_report as refresh

    refresh(run_dir)
