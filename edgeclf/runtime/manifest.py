"""Reading ``export/manifest.json`` and checking artifact hashes (stdlib only).

The manifest is a public contract written by ``edgeclf export``::

    {"labels": [...], "preprocessing": {...},
     "artifacts": [{"file": "model.onnx", "format": "onnx", "quantization": "none",
                    "bytes": N, "sha256": "...", ...}]}

``file`` is relative to the export directory. Formats: ``savedmodel``, ``onnx``,
``tflite``; quantizations: ``none``, ``dynamic``, ``float16``, ``int8``.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import ModelError

MANIFEST_NAME = "manifest.json"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file, or of a directory (its files' relative paths and contents)."""
    import hashlib  # imported here: the runtime's import time matters (cold start)

    path = Path(path)
    h = hashlib.sha256()
    if path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(f.relative_to(path).as_posix().encode() + b"\0")
            h.update(sha256_file(f).encode())
        return h.hexdigest()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def load_manifest(export_dir: str | Path) -> dict:
    path = Path(export_dir) / MANIFEST_NAME
    if not path.is_file():
        raise ModelError(f"no {MANIFEST_NAME} in {export_dir}: run `edgeclf export` first")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("artifacts"), list):
        raise ModelError(f"{path} has no 'artifacts' list")
    return manifest


def verify_artifact(export_dir: str | Path, entry: dict) -> Path:
    """Return the artifact's path after checking that its sha256 matches the manifest."""
    path = Path(export_dir) / entry["file"]
    if not path.exists():
        raise ModelError(f"artifact {entry['file']} listed in the manifest is missing")
    actual = sha256_file(path)
    if actual != entry.get("sha256"):
        raise ModelError(f"artifact {entry['file']}: sha256 {actual[:12]}... does not match "
                         f"the manifest ({str(entry.get('sha256'))[:12]}...); refusing to use "
                         "a file that changed after export")
    return path
