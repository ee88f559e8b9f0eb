"""`edgeclf doctor`: what is installed, and what each command needs."""

from __future__ import annotations

import os
import platform
import sys

import typer

from edgeclf.machine import distribution_version, package_version

from .common import JsonOption, console, esc, print_json, styled, table

# command -> modules it needs
NEEDS = {
    "train": ["keras", "tensorflow|jax"],
    "export": ["tensorflow", "keras", "tf2onnx", "onnx"],
    "export --quantize (onnx)": ["onnx", "onnxruntime"],
    "parity / eval": ["keras", "tensorflow|jax", "onnxruntime"],
    "predict (onnx)": ["onnxruntime"],
    "predict (tflite)": ["ai-edge-litert|tensorflow"],
    "bench --device gpu": ["onnxruntime-gpu"],
    "report": ["matplotlib"],
}
PACKAGES = ["numpy", "pillow", "keras", "tensorflow", "tensorflow-cpu", "jax", "jaxlib",
            "onnx", "onnxruntime", "onnxruntime-gpu", "tf2onnx", "ai-edge-litert",
            "matplotlib", "typer", "rich"]


_version = distribution_version     # the doctor lists each distribution as installed


def _have(spec: str) -> bool:
    return any(package_version(a) for a in spec.split("|"))


def _providers() -> list[str]:
    try:
        import onnxruntime as ort
        return list(ort.get_available_providers())
    except Exception as e:  # noqa: BLE001 - report, never crash the doctor
        return [f"unavailable ({e})"]


def _gpus() -> list[str]:
    try:
        import subprocess
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
        return [ln for ln in out.stdout.splitlines() if ln.strip()] or ["none"]
    except (OSError, subprocess.SubprocessError):
        return ["none (no nvidia-smi)"]


def diagnose() -> dict:
    """What ``edgeclf doctor`` prints, as data (``--json``)."""
    from edgeclf import __version__

    commands = {}
    for cmd, needs in NEEDS.items():
        missing = [n.replace("|", " or ") for n in needs if not _have(n)]
        commands[cmd] = {"ready": not missing, "missing": missing}
    return {"edgeclf": __version__, "python": platform.python_version(),
            "executable": sys.executable, "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "keras_backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
            "packages": {p: _version(p) for p in PACKAGES}, "gpus": _gpus(),
            "onnxruntime_providers": _providers(), "commands": commands}


def doctor(as_json: JsonOption = False) -> None:
    """Print Python, Keras backend, library versions, GPUs and onnxruntime providers."""
    d = diagnose()
    if as_json:
        print_json(d)
        return
    console.print(f"edgeclf {d['edgeclf']} on Python {d['python']} ({esc(d['executable'])}), "
                  f"{esc(d['platform'])}, {d['cpu_count']} CPU cores")
    console.print(f"Keras backend: {esc(d['keras_backend'])} (set KERAS_BACKEND or --backend)")
    console.print(table("packages", ["package", "version"],
                        [[p, v or styled("missing", "red")] for p, v in d["packages"].items()]))
    console.print(f"GPUs: {esc('; '.join(d['gpus']))}")
    console.print(f"onnxruntime providers: {esc(', '.join(d['onnxruntime_providers']))}")
    rows = [[cmd, styled("ready", "green") if c["ready"] else
             styled(f"missing {', '.join(c['missing'])}", "red")]
            for cmd, c in d["commands"].items()]
    console.print(table("commands", ["command", "status"], rows))
    if not _have("tensorflow|jax"):
        console.print("Install the training extras: " + esc("pip install 'edgeclf[train]'"))


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
