"""``--format web``: a static folder that classifies images in the browser.

``web/`` (``web.int8/`` ... for a quantized model) holds

- ``model.onnx``: the ONNX artifact of the same quantization, with edgeclf's metadata;
- ``index.html``: drop images (or pick them) and see the top classes;
- ``edgeclf.mjs``: a small ES module (load the model, read labels + contract from its
  ``metadata_props``, preprocess exactly as ``edgeclf.runtime`` does, run it);
- onnxruntime-web's WebAssembly build (``edgeclf.export.ort_web``: no CDN at run time).

Serve the folder with any static file server (ES modules and WebAssembly do not load from
``file://``), e.g. ``python -m http.server -d models/NAME/export/web``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from .onnx import describe_onnx, export_onnx
from .ort_web import ORT_WEB_FILES, ORT_WEB_VERSION, find_ort_web

if TYPE_CHECKING:
    from .context import ExportContext

ASSETS = Path(__file__).with_name("web_assets")
PAGE_FILES = ("index.html", "edgeclf.mjs")
MODEL_FILE = "model.onnx"


def export_web(ctx: "ExportContext", path: Path, quantization: str) -> dict:
    """Write the web folder at ``path`` (which does not exist yet)."""
    ort_dir = find_ort_web(ctx.ort_web)          # fails before anything is converted
    path.mkdir(parents=True)
    info = export_onnx(ctx, path / MODEL_FILE, quantization)
    for name in PAGE_FILES:
        shutil.copyfile(ASSETS / name, path / name)
    for name in ORT_WEB_FILES:
        shutil.copyfile(ort_dir / name, path / name)
    return {**info, "onnxruntime_web": ORT_WEB_VERSION}


def describe_web(path: Path) -> tuple[list[dict], list[dict]]:
    """The inputs and outputs of the folder's ONNX model (loaded in onnxruntime)."""
    return describe_onnx(path / MODEL_FILE)
