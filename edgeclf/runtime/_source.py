"""Where a predictor's model comes from: a model file, an export directory or a run directory.

- ``model.onnx`` / ``model.tflite`` (or any file: a TFLite flatbuffer is recognised by its
  ``TFL3`` identifier, anything else is tried as ONNX);
- an export directory holding ``manifest.json``, or a run directory holding
  ``export/manifest.json``: the entry with ``format`` (default ``"onnx"``) and
  ``quantization`` (default ``"none"``, i.e. float32) is used, after its sha256 is checked;
  when neither is given, the fastest parity-passing artifact benchmarked on this machine
  (``_choose.py``) instead, with ``ModelSource.reason`` saying which and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .errors import ModelError
from .manifest import MANIFEST_NAME, load_manifest, verify_artifact

RUNTIME_FORMATS = ("onnx", "tflite")


@dataclass(frozen=True)
class ModelSource:
    path: Path
    format: str
    manifest: dict | None = None      # the export manifest when loaded from a directory
    entry: dict = field(default_factory=dict)   # the manifest's artifact entry
    reason: str | None = None         # why this artifact, when the runtime chose it

    @property
    def input_quant(self) -> dict | None:
        inputs = self.entry.get("inputs") or []
        return inputs[0] if inputs and isinstance(inputs[0], dict) else None


def resolve(path: str | Path, *, format: str | None = None, quantization: str | None = None,
            device: str = "cpu", threads: int | None = None) -> ModelSource:
    path = Path(path)
    if format is not None and format not in RUNTIME_FORMATS:
        raise ModelError(f"the runtime runs {' and '.join(RUNTIME_FORMATS)} models; "
                         f"format={format!r} cannot be predicted with")
    if not path.exists():
        raise ModelError(f"model not found: {path}")
    if path.is_dir():
        return _from_dir(path, format, quantization, device, threads)
    if quantization is not None:
        raise ModelError(f"quantization={quantization!r} picks an artifact of an export "
                         f"manifest; {path} is a single model file")
    return ModelSource(path, format or sniff_format(path))


def sniff_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".onnx", ".tflite"):
        return suffix[1:]
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as e:
        raise ModelError(f"cannot read {path}: {e}") from None
    return "tflite" if head[4:8] == b"TFL3" else "onnx"


def _from_dir(path: Path, fmt: str | None, quantization: str | None, device: str,
              threads: int | None) -> ModelSource:
    if (path / MANIFEST_NAME).is_file():
        export_dir = path
    elif (path / "export" / MANIFEST_NAME).is_file():
        export_dir = path / "export"
    else:
        raise ModelError(f"{path} is a directory without {MANIFEST_NAME} or "
                         f"export/{MANIFEST_NAME}: give a model file, an export directory or "
                         "an exported run (`edgeclf export RUN`)")
    manifest = load_manifest(export_dir)
    reason = None
    if fmt is None and quantization is None:
        from ._choose import choose

        chosen, reason = choose(export_dir, manifest, device=device, threads=threads)
        if chosen is not None:
            return ModelSource(verify_artifact(export_dir, chosen), chosen["format"],
                               manifest, chosen, reason)
    fmt, quantization = fmt or "onnx", quantization or "none"
    entries = [a for a in manifest["artifacts"] if isinstance(a, dict) and "file" in a]
    match = [a for a in entries
             if a.get("format") == fmt and a.get("quantization", "none") == quantization]
    if not match:
        have = ", ".join(f"{a.get('format')}/{a.get('quantization', 'none')}"
                         for a in entries) or "none"
        raise ModelError(f"{export_dir / MANIFEST_NAME} has no {fmt}/{quantization} artifact "
                         f"(it has: {have}); pick one with format=/quantization=")
    entry = match[0]
    artifact = verify_artifact(export_dir, entry)
    return ModelSource(artifact, fmt, manifest, entry, reason)
