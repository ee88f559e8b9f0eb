"""The `edgeclf` command line: a thin layer over the library.

Each command parses options, builds a config, calls one library function and prints.
Commands live in one module each; every module exposes ``register(app)``.
"""

from __future__ import annotations

import importlib

import typer

from .common import setup_logging
from .quiet import configure as configure_third_party_logs

app = typer.Typer(name="edgeclf", no_args_is_help=True, add_completion=False,
                  help="Fine-tune Keras image classifiers on a folder of images and ship "
                       "them to the edge: train, export, parity, bench, predict.")

COMMAND_MODULES = ["data_cmd", "doctor_cmd", "backbones_cmd", "train_cmd", "export_cmd",
                   "parity_cmd", "predict_cmd", "bench_cmd", "report_cmd", "demo_cmd"]


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging, and "
                                       "TensorFlow's and other libraries' own log lines "
                                       "(silenced by default).")) -> None:
    configure_third_party_logs(verbose)      # before any command imports TensorFlow
    setup_logging(verbose)


for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as _e:  # a command module not written yet
        if _e.name != f"{__name__}.{_name}":
            raise
        continue
    _module.register(app)


def main() -> None:
    app()
