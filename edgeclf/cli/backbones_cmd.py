"""`edgeclf backbones`: the registry, with size, parameters and default resolution."""

from __future__ import annotations

import typer

from .common import JsonOption, console, esc, print_json, table


def register(app: typer.Typer) -> None:
    @app.command("backbones")
    def backbones_command(json_out: JsonOption = False) -> None:
        """List the backbones `edgeclf train --backbone` accepts."""
        from edgeclf.backbones import BACKBONES, describe
        from edgeclf.weights import find_cached, keras_cache_dir

        rows = []
        for spec in BACKBONES.values():
            d = describe(spec)
            d["weights_cached"] = bool(spec.notop_file and find_cached(spec))
            rows.append(d)
        if json_out:
            print_json(rows)
            return
        console.print(table(
            "backbones (parameters of the backbone without its top)",
            ["name", "size", "min", "params", "MB", "normalise", "cached"],
            [[r["name"], r["default_size"], r["min_size"], f"{r['params'] / 1e6:.2f}M",
              r["megabytes"], r["normalisation"], "yes" if r["weights_cached"] else "no"]
             for r in rows]))
        console.print(f"[dim]weights cache: {esc(keras_cache_dir())} — or pass --weights "
                      "PATH[/]", soft_wrap=True)
