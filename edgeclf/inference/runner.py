"""Open any model edgeclf can run — a Keras checkpoint, a SavedModel, an ``.onnx`` or a
``.tflite`` — as one :class:`ModelRunner`: uint8 NHWC pixels in, class probabilities out.
ONNX and TFLite go through the embedded runtime's :class:`~edgeclf.runtime.Predictor`, so
parity and eval judge exactly what an app runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from edgeclf.errors import ModelError

from .checkpoint import load_checkpoint


@dataclass
class ModelRunner:
    """One loaded model: uint8 NHWC pixels in, (N, C) class probabilities out."""

    path: Path
    format: str                            # keras | savedmodel | onnx | tflite
    quantization: str
    labels: list[str]
    contract: object                       # edgeclf.runtime.Contract
    batch_mode: str                        # how batches reach the model (for the report)
    fn: Callable[[np.ndarray], np.ndarray]
    embedded: dict = field(default_factory=dict)   # labels/contract the file carries

    def predict(self, x: np.ndarray, *, batch_size: int = 32,
                progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Run ``x`` (uint8 (N, H, W, 3)) in batches of ``batch_size``."""
        n, parts = len(x), []
        for i in range(0, n, max(1, batch_size)):
            p = np.asarray(self.fn(x[i:i + batch_size]), dtype=np.float32)
            if p.ndim != 2 or p.shape[0] != len(x[i:i + batch_size]):
                raise ModelError(f"{self.path}: output shape {p.shape} for a batch of "
                                 f"{len(x[i:i + batch_size])}; expected (N, classes)")
            if p.shape[1] != len(self.labels):
                raise ModelError(f"{self.path}: the model outputs {p.shape[1]} classes but "
                                 f"there are {len(self.labels)} labels "
                                 f"({', '.join(self.labels[:5])}...): wrong labels file or "
                                 "wrong model")
            parts.append(p)
            if progress:
                progress(min(n, i + batch_size), n)
        c = len(self.labels)
        return np.concatenate(parts) if parts else np.zeros((0, c), np.float32)


def detect_format(path: str | Path) -> str:
    path = Path(path)
    if path.is_dir() and (path / "saved_model.pb").is_file():
        return "savedmodel"
    fmt = {".keras": "keras", ".onnx": "onnx", ".tflite": "tflite"}.get(path.suffix.lower())
    if fmt is None:
        raise ModelError(f"{path}: not a model edgeclf can run (expected a .keras "
                         "checkpoint, a SavedModel folder, an .onnx or a .tflite file)")
    return fmt


def open_model(path: str | Path, *, labels: Sequence[str] | None = None, contract=None,
               quantization: str | None = None) -> ModelRunner:
    """Load a model of any edgeclf format. ``labels``/``contract`` override (or stand in
    for) what the file carries; a Keras checkpoint carries neither, so it needs both."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model {path} does not exist")
    fmt = detect_format(path)
    if fmt == "keras":
        fn, embedded, mode = _keras_fn(path), {}, "dynamic batch (Keras)"
    elif fmt == "savedmodel":
        from edgeclf.runtime.metadata import read_savedmodel_assets

        from .savedmodel import load_serving_function

        fn = load_serving_function(path).run
        mode = "dynamic batch (serving_default signature)"
        embedded = read_savedmodel_assets(path) or {}
    else:
        fn, embedded, mode = _predictor_fn(path, fmt, labels, contract)
    labels = list(labels) if labels else embedded.get("labels")
    if contract is None and embedded.get("preprocessing"):
        from edgeclf.runtime.contract import Contract

        contract = Contract.from_dict(embedded["preprocessing"])
    if not labels:
        raise ModelError(f"{path} carries no labels: pass a labels file (--labels FILE)")
    if contract is None:
        raise ModelError(f"{path} carries no preprocessing contract")
    return ModelRunner(path=path, format=fmt,
                       quantization=quantization or embedded.get("quantization") or "none",
                       labels=list(labels), contract=contract, batch_mode=mode, fn=fn,
                       embedded=embedded)


def _keras_fn(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    model = load_checkpoint(path)

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(model(x.astype(np.float32), training=False))
    return run


def _predictor_fn(path: Path, fmt: str, labels, contract):
    from edgeclf.runtime import Predictor

    try:
        pred = Predictor.from_path(path, labels=list(labels) if labels else None,
                                   contract=contract, format=fmt)
    except ModelError as e:
        if labels or "labels" not in str(e):
            raise
        raise ModelError(f"{e} (command line: --labels FILE)") from None
    fixed = pred.fixed_batch
    mode = ("dynamic batch" if not fixed else
            f"fixed batch {fixed}: the runtime runs the batch in chunks of {fixed}"
            + (" (image by image)" if fixed == 1 else ""))
    embedded = {"labels": list(pred.labels), "preprocessing": pred.contract.to_dict(),
                "quantization": pred.quantization}
    return pred.run, embedded, mode
