"""Export a run's checkpoint to deployable artifacts: SavedModel, ONNX, TFLite.

``FORMATS`` is the one table of formats that ``export``, ``bench`` and the CLI read by
name: for each format, its runtime, its file names and the quantizations it supports.
Importing this package does not import TensorFlow; the exporters do, when called.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .onnx import describe_onnx, export_onnx
from .savedmodel import describe_savedmodel, export_savedmodel
from .tflite import describe_tflite, export_tflite
from .web import describe_web, export_web

QUANTIZATIONS = ("none", "dynamic", "float16", "int8")


@dataclass(frozen=True)
class FormatSpec:
    """One export format: how it is written, described, named and run."""

    name: str
    runtime: str                 # "tensorflow" | "onnxruntime" | "litert"
    suffix: str                  # file suffix; "" for a directory artifact
    quantizations: tuple[str, ...]
    export: Callable             # (ctx, path, quantization) -> converter info dict
    describe: Callable           # (path) -> (inputs, outputs); also proves it loads
    stem: str = "model"
    in_all: bool = True          # part of ``--format all`` (web needs onnxruntime-web)
    benched: bool = True         # timed by ``edgeclf bench`` (web: in a browser, its own test)

    @property
    def is_dir(self) -> bool:
        return self.suffix == ""

    def filename(self, quantization: str) -> str:
        """``model.onnx``, ``model.int8.tflite``, ``saved_model``, ``web.int8`` ..."""
        if quantization not in self.quantizations:
            raise ValueError(f"{self.name} has no quantization {quantization!r}")
        middle = "" if quantization == "none" else f".{quantization}"
        return f"{self.stem}{middle}{self.suffix}"


FORMATS: dict[str, FormatSpec] = {
    "savedmodel": FormatSpec("savedmodel", "tensorflow", "", ("none",), export_savedmodel,
                             describe_savedmodel, stem="saved_model"),
    "onnx": FormatSpec("onnx", "onnxruntime", ".onnx", QUANTIZATIONS, export_onnx,
                       describe_onnx),
    "tflite": FormatSpec("tflite", "litert", ".tflite", QUANTIZATIONS, export_tflite,
                         describe_tflite),
    "web": FormatSpec("web", "onnxruntime-web", "", QUANTIZATIONS, export_web, describe_web,
                      stem="web", in_all=False, benched=False),
}


def artifact_path(export_dir: str | Path, fmt: str, quantization: str) -> Path:
    return Path(export_dir) / FORMATS[fmt].filename(quantization)


from .exporter import (ArtifactResult, ExportConfig, ExportResult,  # noqa: E402
                       export_run, plan_jobs)

__all__ = ["FORMATS", "QUANTIZATIONS", "FormatSpec", "artifact_path", "ExportConfig",
           "ExportResult", "ArtifactResult", "export_run", "plan_jobs"]
