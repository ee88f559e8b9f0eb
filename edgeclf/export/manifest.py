"""Writing ``RUN/export/manifest.json`` (reading lives in ``edgeclf.runtime.manifest``).

One entry per artifact, keyed by (format, quantization): re-exporting one replaces that
entry and keeps the others. Shapes use ``null`` for a dynamic dimension.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from edgeclf import __version__
from edgeclf.errors import ExportError
from edgeclf.fsutil import read_json, write_json
from edgeclf.runtime.manifest import MANIFEST_NAME, sha256_file

log = logging.getLogger(__name__)


def artifact_bytes(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def make_entry(*, export_dir: Path, path: Path, fmt: str, quantization: str,
               inputs: list[dict], outputs: list[dict], meta: dict, checkpoint: dict,
               converter: dict, seconds: float, calibration: dict | None = None) -> dict:
    entry = {"file": path.relative_to(export_dir).as_posix(), "format": fmt,
             "quantization": quantization, "bytes": artifact_bytes(path),
             "sha256": sha256_file(path), "inputs": inputs, "outputs": outputs,
             "preprocessing": meta["preprocessing"], "labels": meta["labels"],
             "checkpoint": checkpoint, "converter": converter,
             "export_seconds": round(seconds, 2),
             "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    if calibration is not None:
        entry["calibration"] = {k: v for k, v in calibration.items() if k != "files"}
    return entry


def read_existing(export_dir: Path) -> dict:
    """The current manifest, or an empty one. A corrupt manifest is an error (it would
    otherwise be silently replaced and the other artifacts forgotten)."""
    path = export_dir / MANIFEST_NAME
    if not path.is_file():
        return {"artifacts": []}
    try:
        manifest = read_json(path)
    except (OSError, ValueError) as e:
        raise ExportError(f"{path} exists but is not valid JSON ({e}); move it away to "
                          "start a new manifest") from None
    if not isinstance(manifest.get("artifacts"), list):
        raise ExportError(f"{path} has no 'artifacts' list; move it away to start afresh")
    return manifest


def update_manifest(export_dir: Path, entry: dict, *, meta: dict, checkpoint: dict,
                    calibration: dict | None = None) -> dict:
    """Replace the entry with the same (format, quantization), keep the rest, write."""
    manifest = read_existing(export_dir)
    key = (entry["format"], entry["quantization"])
    kept = [a for a in manifest["artifacts"]
            if (a.get("format"), a.get("quantization")) != key]
    stale = [a["file"] for a in kept
             if a.get("checkpoint", {}).get("sha256") != checkpoint["sha256"]]
    if stale:
        log.warning("kept manifest entries exported from another checkpoint: %s",
                    ", ".join(stale))
    order = {f: i for i, f in enumerate(("savedmodel", "onnx", "tflite"))}
    qorder = {q: i for i, q in enumerate(("none", "dynamic", "float16", "int8"))}
    artifacts = sorted([*kept, entry], key=lambda a: (order.get(a["format"], 9),
                                                      qorder.get(a["quantization"], 9)))
    manifest.update({"labels": meta["labels"], "preprocessing": meta["preprocessing"],
                     "checkpoint": checkpoint, "edgeclf_version": __version__,
                     "updated": entry["created"], "artifacts": artifacts})
    if calibration is not None:
        manifest["calibration"] = calibration
    write_json(export_dir / MANIFEST_NAME, manifest)
    return manifest


def record_parity(export_dir: Path, summaries: dict[str, dict]) -> dict:
    """Set the ``"parity"`` summary of the entries named in ``summaries`` (by file); the
    artifacts, their hashes and every other entry stay as they are."""
    manifest = read_existing(export_dir)
    for entry in manifest["artifacts"]:
        if entry.get("file") in summaries:
            entry["parity"] = summaries[entry["file"]]
    write_json(export_dir / MANIFEST_NAME, manifest)
    return manifest


def float32_bytes(manifest: dict, fmt: str) -> int | None:
    """Size of the float32 artifact of ``fmt`` in the manifest (for relative sizes)."""
    for a in manifest.get("artifacts", []):
        if a.get("format") == fmt and a.get("quantization") == "none":
            return int(a["bytes"])
    return None
