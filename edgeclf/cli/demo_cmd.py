"""`edgeclf demo`: the whole path on a generated dataset, in a few minutes on 2 cores."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import typer

from .common import (EXIT_FAILED, JsonOption, console, err_console, esc, handle_errors,
                     print_json, styled, table)

STYLE = {"ok": "green", "failed": "red", "skipped": "yellow"}


@handle_errors
def demo(
    out: Path = typer.Option(Path("models"), help="Folder of runs."),
    name: str = typer.Option("demo", help="Run name."),
    data: Optional[Path] = typer.Option(None, help="Use this dataset folder instead of "
                                        "generating one."),
    weights: str = typer.Option("none", help="none | imagenet | PATH to a Keras .h5."),
    backbone: str = typer.Option("mobilenetv2_0.35", help="See `edgeclf backbones`."),
    image_size: int = typer.Option(64, help="Input size (small keeps the demo fast)."),
    epochs: int = typer.Option(20, help="Training epochs."),
    as_json: JsonOption = False,
) -> None:
    """Train -> export -> parity -> bench -> predict -> report on a generated dataset."""
    from edgeclf.demo import DemoConfig, run_demo

    cfg = DemoConfig(out=out, name=name, data=data, weights=weights, backbone=backbone,
                     image_size=image_size, epochs=epochs)

    def show(stage) -> None:
        colour = STYLE[stage.status]
        (err_console if as_json else console).print(
            f"[bold {colour}]{stage.name:8s} {stage.status}[/] [dim]({stage.seconds:.1f}s)[/] "
            f"{esc(stage.summary)}", highlight=False)

    result = run_demo(cfg, on_stage=show)
    if as_json:
        print_json({"run_dir": str(result.run_dir), "ok": result.ok,
                    "stages": [dataclasses.asdict(s) for s in result.stages]})
    else:
        console.print(table("edgeclf demo", ["stage", "status", "seconds"],
                            [[s.name, styled(s.status, STYLE[s.status]), f"{s.seconds:.1f}"]
                             for s in result.stages]))
        console.print(f"Run: [bold]{esc(result.run_dir)}[/]; open "
                      f"{esc(result.run_dir / 'report.html')}")
        console.print(f"Try: [bold]{esc(f'edgeclf predict {result.run_dir} <image>')}[/]")
    if not result.ok:
        raise typer.Exit(EXIT_FAILED)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
