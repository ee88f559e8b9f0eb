"""Metadata that travels inside every artifact: labels, preprocessing contract, provenance.

- ONNX: ``metadata_props`` keys ``edgeclf.labels`` (JSON list), ``edgeclf.preprocessing``
  (contract JSON), ``edgeclf.version``, ``edgeclf.checkpoint_sha256``.
- TFLite: a zip archive appended to the flatbuffer (TFLite Support's associated files;
  interpreters ignore trailing bytes) holding ``edgeclf.json`` and ``labels.txt``; the
  exporter also writes standard TFLite Metadata into the flatbuffer that names
  ``labels.txt`` as the output's labels (``edgeclf.export.tflite_metadata``). Artifacts
  from before that (the zip written on its own, offsets counted from the zip's start) read
  the same.
- SavedModel: ``assets.extra/edgeclf.json`` and ``assets.extra/labels.txt``.

Stdlib only, so the runtime can read it without TensorFlow.
"""

from __future__ import annotations

import json
from pathlib import Path

from .contract import Contract
from .errors import ModelError

KEY_LABELS = "edgeclf.labels"
KEY_CONTRACT = "edgeclf.preprocessing"
KEY_VERSION = "edgeclf.version"
KEY_CHECKPOINT = "edgeclf.checkpoint_sha256"
SIDECAR = "edgeclf.json"
LABELS_FILE = "labels.txt"


def build_metadata(labels: list[str], contract: Contract, *, checkpoint_sha256: str = "",
                   version: str | None = None) -> dict:
    if version is None:
        from edgeclf import __version__ as version
    return {"labels": list(labels), "preprocessing": contract.to_dict(),
            "edgeclf_version": version, "checkpoint_sha256": checkpoint_sha256}


def onnx_props(meta: dict) -> dict[str, str]:
    """The ``metadata_props`` entries for an ONNX model."""
    return {KEY_LABELS: json.dumps(meta["labels"]),
            KEY_CONTRACT: json.dumps(meta["preprocessing"], sort_keys=True),
            KEY_VERSION: str(meta.get("edgeclf_version", "")),
            KEY_CHECKPOINT: str(meta.get("checkpoint_sha256", ""))}


def from_onnx_props(props: dict[str, str]) -> dict | None:
    """Parse ``metadata_props`` (e.g. ``session.get_modelmeta().custom_metadata_map``)."""
    if KEY_LABELS not in props and KEY_CONTRACT not in props:
        return None
    try:
        return {"labels": json.loads(props[KEY_LABELS]) if KEY_LABELS in props else None,
                "preprocessing": json.loads(props[KEY_CONTRACT]) if KEY_CONTRACT in props else None,
                "edgeclf_version": props.get(KEY_VERSION, ""),
                "checkpoint_sha256": props.get(KEY_CHECKPOINT, "")}
    except ValueError as e:
        raise ModelError(f"edgeclf metadata in the ONNX model is not valid JSON: {e}") from None


def embed_tflite(path: str | Path, meta: dict) -> None:
    """Append the associated-files zip (``edgeclf.json`` + ``labels.txt``) to a ``.tflite``
    file, in place. Written as TFLite Support's MetadataPopulator writes it (``zipfile`` in
    append mode: member offsets count from the start of the file), so the files that the
    standard TFLite metadata names (``labels.txt``) are where MediaPipe looks for them.
    Stored uncompressed: TFLite Support's metadata extractor (used by MediaPipe) hands out
    views into the model buffer and refuses compressed members."""
    import zipfile  # imported here: the runtime's import time matters (cold start)

    with zipfile.ZipFile(path, "a", zipfile.ZIP_STORED) as zf:
        zf.writestr(SIDECAR, json.dumps(meta, indent=2))
        zf.writestr(LABELS_FILE, "\n".join(meta["labels"]) + "\n")


def read_tflite(path: str | Path) -> dict | None:
    """Metadata appended by :func:`embed_tflite`, or None for a plain ``.tflite``."""
    import zipfile

    try:
        if not zipfile.is_zipfile(path):
            return None
        with zipfile.ZipFile(path) as zf:
            if SIDECAR not in zf.namelist():
                return None
            return json.loads(zf.read(SIDECAR))
    except (OSError, zipfile.BadZipFile, ValueError, KeyError):
        return None


def write_savedmodel_assets(saved_model_dir: str | Path, meta: dict) -> None:
    extra = Path(saved_model_dir) / "assets.extra"
    extra.mkdir(parents=True, exist_ok=True)
    (extra / SIDECAR).write_text(json.dumps(meta, indent=2))
    (extra / "labels.txt").write_text("\n".join(meta["labels"]) + "\n")


def read_savedmodel_assets(saved_model_dir: str | Path) -> dict | None:
    f = Path(saved_model_dir) / "assets.extra" / SIDECAR
    return json.loads(f.read_text()) if f.is_file() else None


def read_labels_file(path: str | Path) -> list[str]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ModelError(f"cannot read labels file {path}: {e}") from None
    labels = [ln.strip() for ln in lines if ln.strip()]
    if not labels:
        raise ModelError(f"labels file {path} is empty")
    return labels
