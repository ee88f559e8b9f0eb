"""`edgeclf report RUN`: write the run's self-contained report.html."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import JsonOption, console, handle_errors, print_json, shown


@handle_errors
def report(run: Path = typer.Argument(..., help="Run directory (models/<name>)."),
           as_json: JsonOption = False,
           ) -> None:
    """Write RUN/report.html: dataset, training curves, test metrics, export, parity and
    latency on one self-contained page (open it in any browser, offline)."""
    from edgeclf.report.html import write_report

    path = write_report(run)
    if as_json:
        print_json({"report": str(path)})
        return
    console.print(shown(path), markup=False, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("report")(report)
