"""`edgeclf predict MODEL IMAGE_OR_DIR...`: classify images with an exported model.

A thin layer over :class:`edgeclf.runtime.Predictor`: folders are walked (image suffixes,
hidden files skipped), images run in batches, an unreadable image is reported and the batch
goes on. Exit code 0 when every image was predicted; 1 when any input could not be read
(with ``--skip-bad``: only when no image at all could be), or the model could not be loaded.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Iterator, Optional

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from edgeclf.runtime import Prediction, Predictor
from edgeclf.runtime.bulk import predict_stream

from .common import JsonOption, console, err_console, esc, fail, handle_errors, shown, styled

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
BAR_WIDTH = 20
_EIGHTHS = " ▏▎▍▌▋▊▉█"


def iter_images(inputs: list[Path]) -> Iterator[Path]:
    """Files as given; folders walked recursively (sorted, image suffixes, no hidden files)."""
    for item in inputs:
        if not item.is_dir():
            yield item  # a missing or unreadable file is reported by the predictor
            continue
        for root, dirs, files in os.walk(item):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES:
                    yield Path(root) / name


def bar(score: float, width: int = BAR_WIDTH) -> str:
    """A horizontal bar of ``width`` cells for a probability in [0, 1] (eighth-cell steps)."""
    eighths = int(round(max(0.0, min(1.0, score)) * width * 8))
    full, part = divmod(eighths, 8)
    return ("█" * full + (_EIGHTHS[part] if part else "")).ljust(width)


def _batches(items: Iterator, size: int) -> Iterator[list]:
    chunk: list = []
    for p in items:
        chunk.append(p)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _print_table(preds: list[Prediction]) -> None:
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    t.add_column("image", overflow="fold", ratio=1)
    t.add_column("class", overflow="fold", ratio=1)
    t.add_column("prob.", justify="right", no_wrap=True)
    t.add_column("", no_wrap=True, min_width=BAR_WIDTH)
    for p in preds:
        for rank, (label, score) in enumerate(zip(p.labels, p.scores)):
            t.add_row(Text(shown(p.source) if rank == 0 else ""), Text(shown(label)),
                      f"{score:.1%}", styled(bar(score), "green"),
                      end_section=rank == len(p.labels) - 1)
    if preds:
        console.print(t)


@handle_errors
def predict(model: Path = typer.Argument(..., help="A .onnx/.tflite file, an export "
                                         "directory or a run directory."),
            images: list[Path] = typer.Argument(..., help="Image files and/or folders "
                                                "(folders are walked)."),
            top_k: int = typer.Option(5, "--top-k", min=1, help="Classes shown per image."),
            json_out: JsonOption = False,
            device: str = typer.Option("cpu", help="cpu, gpu (error if unavailable) or auto."),
            labels: Optional[Path] = typer.Option(None, help="Labels file (one class per line) "
                                                  "for a model without edgeclf metadata."),
            format: Optional[str] = typer.Option(None, "--format", help="Artifact of a "
                                                 "run/export dir: onnx (default) or tflite."),
            quantization: Optional[str] = typer.Option(None, help="Artifact of a run/export "
                                                       "dir: none (default), dynamic, "
                                                       "float16, int8."),
            threads: Optional[int] = typer.Option(None, min=1, help="Inference threads."),
            batch_size: int = typer.Option(32, min=1, help="Images per batch."),
            skip_bad: bool = typer.Option(False, "--skip-bad", help="Accept unreadable "
                                          "inputs: report them and exit 0 (1 only when no "
                                          "image could be predicted)."),
            ) -> None:
    """Classify images: a table with a bar per class, or JSON lines (one object per image)
    with --json.

    Unreadable images are reported and the others predicted; the exit code is then 1 (a
    failed item) unless --skip-bad.
    """
    pred = Predictor.from_path(model, device=device, threads=threads, labels=labels,
                               format=format, quantization=quantization)
    if not json_out:
        err_console.print(f"[dim]{esc(pred.path)} ({pred.format} on {pred.provider}, "
                          f"{len(pred.labels)} classes, input {pred.contract.size[0]}x"
                          f"{pred.contract.size[1]} {esc(pred.contract.resize)})[/]")
        if pred.selection:
            err_console.print(f"[dim]chose {esc(pred.selection)}[/]", highlight=False)
    n_ok = n_bad = 0
    # streamed: the next batches decode while the model runs, memory flat for any folder
    stream = predict_stream(pred, (str(p) for p in iter_images(images)), top_k=top_k,
                            batch_size=batch_size)
    for preds in _batches(stream, batch_size):
        for p in preds:
            if p.ok:
                n_ok += 1
            else:
                n_bad += 1
                if not json_out:
                    err_console.print(f"[yellow]unreadable[/] {esc(p.error)}", highlight=False,
                                      soft_wrap=True)
        if json_out:
            typer.echo("\n".join(json.dumps(_json_line(p)) for p in preds))
            sys.stdout.flush()
        else:
            _print_table([p for p in preds if p.ok])
    err_console.print(f"{n_ok} image(s) predicted, {n_bad} unreadable", highlight=False)
    if n_ok == 0:
        fail("no image could be predicted")
    if n_bad and not skip_bad:
        fail(f"{n_bad} input(s) could not be read (--skip-bad accepts that)")


def _json_line(p: Prediction) -> dict:
    d = p.to_dict()
    return {"file": d.pop("source"), **{k: v for k, v in d.items() if k != "index"}}


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)
