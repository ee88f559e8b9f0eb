"""`edgeclf export RUN`: a thin layer over ``edgeclf.export.export_run``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import typer

from edgeclf.export import FORMATS, QUANTIZATIONS, ExportConfig
from edgeclf.export.calibration import DEFAULT_CALIBRATION_SIZE
from edgeclf.export.onnx import DEFAULT_OPSET
from edgeclf.export.ort_web import ENV_VAR, ORT_WEB_VERSION
from edgeclf.export.tflite import INT8_IO_TYPES

from .common import (JsonOption, comma_list, console, esc, fail, handle_errors, next_step,
                     print_json, progress_bar, refresh_report, styled, table)

FORMAT_HELP = (f"{', '.join(FORMATS)} or all (repeatable; all = every format but web, "
               "the browser predictor, which needs onnxruntime-web: see --ort-web).")
QUANT_HELP = (f"{', '.join(QUANTIZATIONS)} (repeatable; none = float32). int8 is calibrated "
              "on a stratified sample of the training split.")


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.2f}"


def print_result(result) -> None:
    rows = []
    for a in result.artifacts:
        status = styled(a.status, {"ok": "green", "failed": "red"}.get(a.status, ""))
        ratio = "-" if a.size_vs_float32 is None else f"{a.size_vs_float32:.2f}x"
        secs = "-" if a.seconds is None else f"{a.seconds:.1f}"
        rows.append([a.format, a.quantization, status, a.file or "-", _mb(a.bytes), secs,
                     ratio])
    console.print(table(f"Exported {esc(result.checkpoint.name)} -> {esc(result.export_dir)}",
                        ["format", "quantization", "status", "file", "size (MB)",
                         "export (s)", "vs float32"], rows))
    for a in result.artifacts:
        if a.status == "failed":
            console.print(f"[red]{esc(a.format)} {esc(a.quantization)}:[/] {esc(a.message)}",
                          soft_wrap=True)
    notes = dict.fromkeys(w for a in result.artifacts for w in a.warnings)
    for note in notes:
        console.print(f"[yellow]note:[/] {esc(note)}", soft_wrap=True)


def result_json(result) -> dict:  # noqa: ANN001 - edgeclf.export.ExportResult
    return {"run": str(result.run), "export_dir": str(result.export_dir),
            "manifest": str(result.manifest), "checkpoint": str(result.checkpoint),
            "ok": result.ok, "artifacts": [dataclasses.asdict(a) for a in result.artifacts]}


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
           onnx_int8: str = typer.Option(
               "auto", "--onnx-int8", help="ONNX int8 weights: auto (U8S8 where this CPU has "
               "VNNI/AMX/ARM dot-product int8 instructions, exact and fastest there; else "
               "U8U8, which never saturates on older x86), u8s8 or u8u8."),
           ort_web: Optional[str] = typer.Option(
               None, "--ort-web", help="--format web: the onnxruntime-web package "
               f"{ORT_WEB_VERSION} (.tgz from `npm pack`, or its folder) for a machine "
               f"without npm or offline; default: ${ENV_VAR}, the cache, then npm."),
           as_json: JsonOption = False,
           ) -> None:
    """Convert a run's checkpoint to SavedModel / ONNX / TFLite (+ quantized variants), or a
    static browser page (--format web).

    Exits 1 when any artifact failed (the table says which and why)."""
    _export(run, formats, quantize, checkpoint, opset, calibration_size, seed, int8_io,
            as_json, ort_web, onnx_int8)


@handle_errors
def _export(run, formats, quantize, checkpoint, opset, calibration_size, seed, int8_io,
            as_json, ort_web=None, onnx_int8="auto") -> None:
    from edgeclf.export import export_run

    defaults = ExportConfig()
    config = ExportConfig(formats=comma_list(formats, lower=True) or defaults.formats[:1],
                          quantizations=(comma_list(quantize, lower=True)
                                         or defaults.quantizations[:1]),
                          checkpoint=checkpoint, opset=opset,
                          calibration_size=calibration_size, seed=seed,
                          int8_io=int8_io.lower(), ort_web=ort_web,
                          onnx_int8=onnx_int8.lower())
    with progress_bar("loading checkpoint", transient=True) as update:
        result = export_run(run, config, progress=lambda done, total, label: update(
            done, total, f"exporting {label}"))
    refresh_report(run)
    if as_json:
        print_json(result_json(result))
    else:
        print_result(result)
        for a in result.artifacts:
            if a.format == "web" and a.status == "ok":
                console.print(f"browser page: python -m http.server -d "
                              f"{esc(result.export_dir / a.file)} and open "
                              "http://localhost:8000", soft_wrap=True, highlight=False)
    if not result.ok:
        fail("some artifacts failed: " + ", ".join(
            f"{a.format} {a.quantization}" for a in result.artifacts if a.status == "failed"))
    next_step(f"edgeclf parity {run}")


def register(app: typer.Typer) -> None:
    app.command("export")(export)
