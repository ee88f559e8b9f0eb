"""`edgeclf data check DATA_DIR`: validate a dataset folder without training.
`edgeclf data relocate RUN DATA_DIR`: point a run at its dataset's new folder."""

from __future__ import annotations

from pathlib import Path

import typer

from edgeclf.data import DataReport, prepare_data
from edgeclf.runtime.contract import Contract

from .common import console, handle_errors, print_json, progress_bar, table

data_app = typer.Typer(help="Inspect and validate a dataset folder (one sub-folder per class).",
                       no_args_is_help=True)


def print_report(report: DataReport) -> None:
    rows = [[c, report.counts[c]] for c in report.classes]
    rows.append(["[bold]total", f"[bold]{report.n_usable}"])
    console.print(table(f"{report.root}: {len(report.classes)} classes, "
                        f"{report.n_usable} usable images", ["class", "images"], rows))
    bad = [p for p in report.problems]
    if bad:
        console.print(table(f"{len(bad)} problem file(s)", ["file", "problem", "detail"],
                            [[p.relpath, p.kind, p.message] for p in bad[:50]]))
        if len(bad) > 50:
            console.print(f"... and {len(bad) - 50} more (see --json)")
    for group in report.cross_class_duplicates:
        console.print(f"[yellow]same image in two classes:[/] {' = '.join(group)}")
    for w in report.warnings:
        console.print(f"[yellow]warning:[/] {w}")


@data_app.command("check")
@handle_errors
def check(data_dir: Path = typer.Argument(..., help="Folder with one sub-folder per class."),
          image_size: int = typer.Option(224, help="Size of the decode cache it builds."),
          workers: int = typer.Option(0, help="Decoding processes (0: one per core)."),
          json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
          ) -> None:
    """Report classes, counts, unreadable/corrupt/small files, duplicates and imbalance."""
    with progress_bar("decoding") as update:
        prepared = prepare_data(data_dir, Contract(size=(image_size, image_size)),
                                workers=workers or None, progress=update, require=False)
    report = prepared.report
    if json_out:
        print_json(report.to_dict())
    else:
        print_report(report)
        console.print("[dim]decode cache:[/] "
                      + ("built " if prepared.cache.built else "reused (nothing decoded) ")
                      + str(prepared.cache.path))


@data_app.command("relocate")
@handle_errors
def relocate(run_dir: Path = typer.Argument(..., help="A run directory (with split.json)."),
             data_dir: Path = typer.Argument(..., help="Where its dataset is now."),
             ) -> None:
    """Point a run trained elsewhere (e.g. on a GPU machine) at its dataset's folder here,
    so export calibration, parity and eval find the images; every file is checked against
    the sha256 split.json recorded."""
    from edgeclf.data.split import relocate_run

    split = relocate_run(run_dir, data_dir)
    n = len(split.train) + len(split.val) + len(split.test)
    console.print(f"{run_dir}: split.json now reads {n} images from {split.root} "
                  f"(all present{', sha256 verified' if split.sha256 else ''})")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
