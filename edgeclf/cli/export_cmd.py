"""`edgeclf export RUN`: a thin layer over ``edgeclf.export.export_run``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from edgeclf.export import FORMATS, QUANTIZATIONS, ExportConfig
from edgeclf.export.calibration import DEFAULT_CALIBRATION_SIZE
from edgeclf.export.onnx import DEFAULT_OPSET
from edgeclf.export.tflite import INT8_IO_TYPES

from .common import console, err_console, handle_errors, next_step, refresh_report, table

FORMAT_HELP = f"{', '.join(FORMATS)} or all (repeatable)."
QUANT_HELP = (f"{', '.join(QUANTIZATIONS)} (repeatable; none = float32). int8 is calibrated "
              "on a stratified sample of the training split.")


def _split_values(values: Optional[list[str]], default: str) -> tuple[str, ...]:
    parts = [p.strip().lower() for v in (values or [default]) for p in v.split(",")]
    return tuple(p for p in parts if p)


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.2f}"


def print_result(result) -> None:
    rows = []
    for a in result.artifacts:
        status = {"ok": "[green]ok[/]", "failed": "[red]failed[/]"}.get(a.status, a.status)
        ratio = "-" if a.size_vs_float32 is None else f"{a.size_vs_float32:.2f}x"
        secs = "-" if a.seconds is None else f"{a.seconds:.1f}"
        rows.append([a.format, a.quantization, status, a.file or "-", _mb(a.bytes), secs,
                     ratio])
    console.print(table(f"Exported {result.checkpoint.name} -> {result.export_dir}",
                        ["format", "quantization", "status", "file", "size (MB)",
                         "export (s)", "vs float32"], rows))
    for a in result.artifacts:
        if a.status == "failed":
            console.print(f"[red]{a.format} {a.quantization}:[/] {a.message}", soft_wrap=True)
    notes = dict.fromkeys(w for a in result.artifacts for w in a.warnings)
    for note in notes:
        console.print(f"[yellow]note:[/] {note}", soft_wrap=True)


def export(run: Path = typer.Argument(..., help="Run directory (models/<name>)."),
           formats: Optional[list[str]] = typer.Option(None, "--format", "-f", help=FORMAT_HELP),
           quantize: Optional[list[str]] = typer.Option(None, "--quantize", "-q",
                                                        help=QUANT_HELP),
           checkpoint: str = typer.Option("best", help="best, last, or a path to a .keras file."),
           opset: int = typer.Option(DEFAULT_OPSET, help="ONNX opset."),
           calibration_size: int = typer.Option(
               DEFAULT_CALIBRATION_SIZE, help="int8 calibration images from the training split."),
           seed: int = typer.Option(0, help="Seed of the calibration sample."),
           int8_io: str = typer.Option(INT8_IO_TYPES[0], help="int8 TFLite input/output type: "
                                       f"{' or '.join(INT8_IO_TYPES)} (uint8: raw pixels, "
                                       "scale 1, zero point 0)."),
           ) -> None:
    """Convert a run's checkpoint to SavedModel / ONNX / TFLite (+ quantized variants)."""
    _export(run, formats, quantize, checkpoint, opset, calibration_size, seed, int8_io)


@handle_errors
def _export(run, formats, quantize, checkpoint, opset, calibration_size, seed, int8_io) -> None:
    from edgeclf.export import export_run

    defaults = ExportConfig()
    config = ExportConfig(formats=_split_values(formats, defaults.formats[0]),
                          quantizations=_split_values(quantize, defaults.quantizations[0]),
                          checkpoint=checkpoint, opset=opset,
                          calibration_size=calibration_size, seed=seed,
                          int8_io=int8_io.lower())
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err_console, transient=True) as bar:
        task = bar.add_task("loading checkpoint", total=None)

        def update(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, description=f"exporting {label}")

        result = export_run(run, config, progress=update)
    refresh_report(run)
    print_result(result)
    if not result.ok:
        err_console.print("[bold red]Error:[/] some artifacts failed (see the table)")
        raise typer.Exit(1)
    next_step(f"edgeclf parity {run}")


def register(app: typer.Typer) -> None:
    app.command("export")(export)
