"""`edgeclf doctor`: what is installed, and what each command needs."""

from __future__ import annotations

import os
import platform
import sys

import typer

from edgeclf.machine import distribution_version, package_version

from .common import console, table

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


def doctor() -> None:
    """Print Python, Keras backend, library versions, GPUs and onnxruntime providers."""
    from edgeclf import __version__

    console.print(f"edgeclf {__version__} on Python {platform.python_version()} "
                  f"({sys.executable}), {platform.platform()}, {os.cpu_count()} CPU cores")
    console.print(f"Keras backend: {os.environ.get('KERAS_BACKEND', 'tensorflow')} "
                  "(set KERAS_BACKEND or --backend)")
    console.print(table("packages", ["package", "version"],
                        [[p, _version(p) or "[red]missing"] for p in PACKAGES]))
    console.print(f"GPUs: {'; '.join(_gpus())}")
    console.print(f"onnxruntime providers: {', '.join(_providers())}")
    rows = []
    for cmd, needs in NEEDS.items():
        missing = [n for n in needs if not _have(n)]
        rows.append([cmd, "[green]ready" if not missing else
                     f"[red]missing {', '.join(m.replace('|', ' or ') for m in missing)}"])
    console.print(table("commands", ["command", "status"], rows))
    if not _have("tensorflow|jax"):
        console.print("Install the training extras: pip install 'edgeclf[train]'")


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
