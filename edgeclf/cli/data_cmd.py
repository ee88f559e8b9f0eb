"""`edgeclf data check DATA_DIR`: validate a dataset folder without training.
`edgeclf data relocate RUN DATA_DIR`: point a run at its dataset's new folder."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable, Iterator, Optional

import typer
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

from edgeclf.data import CachePlan, DataReport, DecodeCache, prepare_data, resolve_budget
from edgeclf.data.budget import BUDGET_ENV
from edgeclf.runtime.contract import Contract

from .common import (JsonOption, console, err_console, esc, handle_errors, print_json, styled,
                     table)

data_app = typer.Typer(help="Inspect and validate a dataset folder (one sub-folder per class).",
                       no_args_is_help=True)


def print_report(report: DataReport) -> None:
    rows = [[c, report.counts[c]] for c in report.classes]
    rows.append([styled("total", "bold"), styled(str(report.n_usable), "bold")])
    console.print(table(f"{esc(report.root)}: {len(report.classes)} classes, "
                        f"{report.n_usable} usable images", ["class", "images"], rows))
    bad = [p for p in report.problems]
    if bad:
        console.print(table(f"{len(bad)} problem file(s)", ["file", "problem", "detail"],
                            [[p.relpath, p.kind, p.message] for p in bad[:50]]))
        if len(bad) > 50:
            console.print(f"... and {len(bad) - 50} more (see --json)")
    for group in report.cross_class_duplicates:
        console.print(f"[yellow]same image in two classes:[/] {esc(' = '.join(group))}")
    for w in report.warnings:
        console.print(f"[yellow]warning:[/] {esc(w)}")


@contextlib.contextmanager
def _two_bars(first: str, second: str) -> Iterator[tuple[Callable, Callable]]:
    """Two progress bars in one live display (scan, then decode)."""
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=err_console) as bars:
        tasks: dict[str, TaskID] = {}

        def updater(name: str) -> Callable[[int, int], None]:
            def update(done: int, total: int) -> None:
                if name not in tasks:
                    tasks[name] = bars.add_task(name, total=total)
                bars.update(tasks[name], completed=done, total=total)
            return update

        yield updater(first), updater(second)


def print_cache(cache: DecodeCache, workers: int) -> None:
    """Where the cache is, or why the images stream and what streaming costs per epoch."""
    if not cache.streaming:
        console.print("[dim]decode cache:[/] "
                      + ("built " if cache.built else "reused (nothing decoded) ")
                      + esc(cache.path))
        return
    n = int(cache.ok.sum())
    cost = (f"decoding {n:,} images takes about {n / cache.decode_rate / workers:.0f}s per "
            f"epoch on {workers} worker(s) ({cache.decode_rate:.0f} images/s per worker, "
            "measured while checking), spent again every epoch" if cache.decode_rate else
            "the images are decoded again every epoch")
    reason = cache.plan.reason if cache.plan else "no cache"
    console.print(f"[yellow]decode cache not written[/] ({esc(reason)}): training streams; "
                  f"{cost}", highlight=False)


@data_app.command("check")
@handle_errors
def check(data_dir: Path = typer.Argument(..., help="Folder with one sub-folder per class."),
          image_size: int = typer.Option(224, help="Size of the decode cache it builds."),
          workers: int = typer.Option(0, help="Decoding processes (0: one per core)."),
          cache_budget: Optional[str] = typer.Option(
              None, "--cache-budget", help="Most disk the decode cache may take (500M, 20G; "
              f"0: no cache, stream) [${BUDGET_ENV} or no cap]. Above it images stream."),
          sample: Optional[int] = typer.Option(None, "--sample", min=1, help="Read only N "
                                               "random files (a quick look at a huge folder; "
                                               "nothing cached)."),
          json_out: JsonOption = False,
          ) -> None:
    """Report classes, counts, unreadable/corrupt/small files, duplicates and imbalance."""
    budget = resolve_budget(cache_budget)

    def show_plan(plan: CachePlan) -> None:
        if not sample:
            err_console.print(f"[dim]{esc(plan.describe())}[/]", highlight=False)

    with _two_bars("scanning", "decoding") as (scanned, decoded):
        prepared = prepare_data(data_dir, Contract(size=(image_size, image_size)),
                                workers=workers or None, progress=decoded, require=False,
                                budget=budget, sample=sample, scan_progress=scanned,
                                on_plan=show_plan)
    report = prepared.report
    if json_out:
        print_json(report.to_dict())
    else:
        print_report(report)
        if not sample:
            print_cache(prepared.cache, workers or os.cpu_count() or 1)


@data_app.command("relocate")
@handle_errors
def relocate(run_dir: Path = typer.Argument(..., help="A run directory (with split.json)."),
             data_dir: Path = typer.Argument(..., help="Where its dataset is now."),
             as_json: JsonOption = False,
             ) -> None:
    """Point a run trained elsewhere (e.g. on a GPU machine) at its dataset's folder here,
    so export calibration, parity and eval find the images; every file is checked against
    the sha256 split.json recorded."""
    from edgeclf.data.split import relocate_run

    split = relocate_run(run_dir, data_dir)
    n = len(split.train) + len(split.val) + len(split.test)
    if as_json:
        print_json({"run": str(run_dir), "root": str(split.root), "n_images": n,
                    "sha256_verified": bool(split.sha256)})
        return
    console.print(f"{esc(run_dir)}: split.json now reads {n} images from {esc(split.root)} "
                  f"(all present{', sha256 verified' if split.sha256 else ''})")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
