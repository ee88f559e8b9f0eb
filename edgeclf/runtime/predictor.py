"""The embeddable predictor: an exported model + its preprocessing contract + its labels.

    from edgeclf.runtime import Predictor
    p = Predictor.from_path("models/flowers")          # run dir, export dir, .onnx or .tflite
    p.predict("rose.jpg", top_k=3)[0].label

Imports numpy and Pillow; onnxruntime (or ai-edge-litert) only when a model is loaded.

Output rule: a model's output is used as probabilities when every value lies in [0, 1] and
every row sums to 1 within :data:`PROBABILITY_TOLERANCE` (float outputs, returned unchanged),
or, for quantized integer outputs, when every dequantized value lies in [0, 1] (rows are then
renormalised to sum to 1, since rounding loses mass). Anything else is taken as logits and
gets a softmax. The rule is applied to the whole batch, never row by row.

Models without edgeclf metadata (e.g. the Coral/TF-Hub classifiers) need ``labels=`` and use
the default contract: the model's input size, ``squash`` resize, ``bilinear`` interpolation
(what TensorFlow's and Coral's classification examples do). A labels list with one more entry
than the model has outputs whose first entry is ``background`` loses that entry. Their
uint8 input gets the raw pixels and int8 input ``pixel - 128`` (see ``_backend.py``); a float
model without metadata must take 0..255 RGB like edgeclf's (its normalisation inside).

Errors (all :class:`EdgeclfError`): :class:`ModelError` (missing/corrupt/unsuitable model,
bad manifest or hash), :class:`ImageError` (an unusable image; also a ``ValueError``),
:class:`DeviceError` (device unavailable), :class:`DependencyError` (engine not installed).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ._backend import Backend
from ._source import ModelSource, resolve
from .contract import Contract
from .errors import ImageError, ModelError
from .metadata import read_labels_file
from .preprocess import BatchResult, preprocess_batch

log = logging.getLogger(__name__)

PROBABILITY_TOLERANCE = 1e-3
FOREIGN_RESIZE = "squash"
FOREIGN_INTERPOLATION = "bilinear"
BACKGROUND_LABELS = ("background", "__background__", "???")


@dataclass(frozen=True)
class Prediction:
    """The top classes of one image (or, with ``strict=False``, why it could not be read)."""

    index: int                          # position in the input
    source: str | None                  # the file path, when the input was a path
    labels: tuple[str, ...] = ()        # best first
    scores: tuple[float, ...] = ()      # probabilities, same order
    classes: tuple[int, ...] = ()       # class indices, same order
    error: ImageError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def label(self) -> str | None:
        return self.labels[0] if self.labels else None

    @property
    def score(self) -> float | None:
        return self.scores[0] if self.scores else None

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"index": self.index, "source": self.source}
        if self.error is not None:
            d["error"] = str(self.error)
        else:
            d["top"] = [{"label": lb, "class": c, "score": s}
                        for lb, c, s in zip(self.labels, self.classes, self.scores)]
        return d


def to_probabilities(y: np.ndarray, *, quantized: bool = False) -> np.ndarray:
    """Apply the output rule of the module docstring to a (N, C) batch."""
    y = np.asarray(y, dtype=np.float32)
    if y.size == 0:
        return y
    lo, hi = float(y.min()), float(y.max())   # NaN and +-inf show in the extremes: no 3rd pass
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ModelError("the model produced NaN or infinite outputs")
    in_range = lo >= 0.0 and hi <= 1.0 + PROBABILITY_TOLERANCE
    if not in_range:
        e = np.exp(y - y.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    sums = y.sum(axis=1, dtype=np.float64)
    if quantized:
        out = y / np.where(sums > 0, sums, 1.0)[:, None].astype(np.float32)
        out[sums <= 0] = 1.0 / y.shape[1]
        return out
    if np.all(np.abs(sums - 1.0) <= PROBABILITY_TOLERANCE):
        return y
    e = np.exp(y - y.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _as_list(images: Any) -> list:
    if isinstance(images, (str, os.PathLike, bytes, bytearray, memoryview, Image.Image)):
        return [images]
    if isinstance(images, np.ndarray):
        return list(images) if images.ndim == 4 else [images]
    if isinstance(images, (list, tuple)):
        return list(images)
    if hasattr(images, "read") or not hasattr(images, "__iter__"):
        return [images]  # one file object, or something preprocess() will refuse by name
    return list(images)


def _float_pixels(batch: np.ndarray, model_dtype: np.dtype) -> np.ndarray:
    """A float batch as run() feeds it: uint8 when its values are whole (exact for every
    model), else the floats themselves for a float-input model; never a silent rounding."""
    if batch.size == 0:
        return batch.astype(np.uint8)
    if not np.isfinite(batch).all() or batch.min() < 0 or batch.max() > 255:
        raise ImageError("run() takes pixel values 0..255; the float batch has values "
                         f"outside that range (min {batch.min():.3g}, max {batch.max():.3g})")
    if np.array_equal(np.rint(batch), batch):
        return batch.astype(np.uint8)
    if batch.max() <= 1.0:
        raise ImageError("the float batch holds fractions within 0..1: it looks normalised; "
                         "run() takes 0..255 pixel values (the model normalises inside)")
    if np.issubdtype(model_dtype, np.integer):
        raise ModelError(f"this model takes {np.dtype(model_dtype).name} pixels and the float "
                         "batch has fractional values; round them (np.rint) or pass uint8 "
                         "pixels: edgeclf does not round them silently")
    return batch.astype(np.float32, copy=False)


def _source_name(item: Any) -> str | None:
    return os.fspath(item) if isinstance(item, (str, os.PathLike)) else None


class Predictor:
    """Classify images with an ONNX or TFLite model. Build it with :meth:`from_path`.

    Thread-safe: one predictor may serve concurrent requests (onnxruntime sessions are
    thread-safe; the TFLite interpreter is guarded by a lock).
    """

    def __init__(self, backend: Backend, *, labels: list[str], contract: Contract,
                 path: Path, threads: int | None = None, quantization: str | None = None):
        self._backend = backend
        self._quantized_out = backend.output_is_quantized   # asked once, not per call
        self._quantization = quantization
        self._format, self._provider = backend.format, backend.provider
        self.labels = labels
        self.contract = contract
        self.path = Path(path)
        self.threads = threads
        #: why from_path loaded this artifact, when it chose among a run's (else None)
        self.selection: str | None = None

    @classmethod
    def from_path(cls, path: str | os.PathLike, *, device: str = "cpu",
                  threads: int | None = None, labels: list[str] | str | os.PathLike | None = None,
                  contract: Contract | dict | None = None, format: str | None = None,
                  quantization: str | None = None,
                  session_config: dict[str, str] | None = None) -> "Predictor":
        """Load a model file (``.onnx``/``.tflite``), an export directory or a run directory.

        Directories use ``export/manifest.json``: by default the fastest artifact that
        passed ``edgeclf parity``, as measured on this machine for ``device``/``threads``
        by ``edgeclf bench`` (``RUN/bench.json``), else the float32 ONNX artifact; which and
        why is in :attr:`selection` (and logged). ``format=``/``quantization=`` pick an
        entry themselves. Its sha256 is checked first.
        ``device``: ``"cpu"``, ``"gpu"`` (raises :class:`DeviceError` when no GPU provider
        can run: never a silent CPU fall-back) or ``"auto"`` (see :attr:`provider`).
        ``labels``/``contract`` override the model's metadata and are required (labels) for
        a model without edgeclf metadata. ``session_config``: onnxruntime session config
        entries added to (or replacing) the predictor's own (``_onnx.DEFAULT_SESSION_CONFIG``;
        e.g. ``{"session.intra_op.allow_spinning": "1"}`` on an idle dedicated machine);
        ignored by TFLite models.
        """
        source = resolve(path, format=format, quantization=quantization, device=device,
                         threads=threads)
        if source.reason:
            log.info("%s: loading %s", path, source.reason)
        backend = _open_backend(source, device, threads, session_config)
        # the manifest (hash-checked) first, then the metadata embedded in the artifact
        meta = _merge(source.manifest, backend.metadata)
        if source.manifest is not None:
            backend.foreign = False
        try:
            resolved_labels = _resolve_labels(labels, meta, backend.num_classes, source.path)
            resolved_contract = _resolve_contract(contract, meta, backend, source.path)
        except BaseException:
            backend.close()
            raise
        log.debug("loaded %s (%s on %s, %d classes)", source.path, source.format,
                  backend.provider, len(resolved_labels))
        predictor = cls(backend, labels=resolved_labels, contract=resolved_contract,
                        path=source.path, threads=threads,
                        quantization=source.entry.get("quantization"))
        predictor.selection = source.reason
        return predictor

    # -- what runs --------------------------------------------------------------------------
    @property
    def format(self) -> str:
        return self._format

    @property
    def provider(self) -> str:
        """What really runs: an onnxruntime provider name, or ``litert-cpu``."""
        return self._provider

    @property
    def input_dtype(self) -> np.dtype:
        """The model input's dtype (float32; uint8/int8 for integer-quantized models)."""
        return self._backend.input.dtype

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def fixed_batch(self) -> int | None:
        """The batch size the model was built for (batches run in chunks of it), or None."""
        return self._backend.fixed_batch

    @property
    def quantization(self) -> str | None:
        """The manifest's quantization (``none``/``dynamic``/``float16``/``int8``) when loaded
        from an export; ``int8`` for an integer model file; None when a file cannot tell."""
        if self._quantization is not None:
            return self._quantization
        # an ONNX graph may take uint8 pixels and still compute in float (edgeclf's exports)
        integer = (self._backend.output_is_quantized
                   or (self.format == "tflite" and np.issubdtype(self.input_dtype, np.integer)))
        return "int8" if integer else None

    @property
    def session(self) -> Any:
        """The onnxruntime ``InferenceSession`` (e.g. for IO binding); None for TFLite."""
        return getattr(self._backend, "session", None)

    # -- inference --------------------------------------------------------------------------
    def preprocess(self, images: Any) -> BatchResult:
        """Apply the model's contract; unusable images are returned in ``errors``."""
        return preprocess_batch(_as_list(images), self.contract, threads=self.threads)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities (N, C) float32 for an already preprocessed (N, H, W, 3) batch of
        0..255 RGB pixels: uint8, or float (whole values are converted to uint8 exactly;
        fractional values go to a float-input model as they are and are a
        :class:`ModelError` for a uint8-input one; 0..1 data is an :class:`ImageError`)."""
        h, w = self.contract.size
        if (not isinstance(batch, np.ndarray) or batch.ndim != 4
                or batch.shape[1:] != (h, w, 3)
                or not (batch.dtype == np.uint8 or np.issubdtype(batch.dtype, np.floating))):
            got = (f"{batch.dtype} {batch.shape}" if isinstance(batch, np.ndarray)
                   else type(batch).__name__)
            raise ImageError(f"run() takes a uint8 array of shape (N, {h}, {w}, 3); got {got}")
        if self._backend is None:
            raise ModelError(f"predictor for {self.path} is closed")
        if batch.dtype != np.uint8:
            batch = _float_pixels(batch, self._backend.input.dtype)
        y = self._backend.run(np.ascontiguousarray(batch))
        if len(batch) and y.shape[1] != len(self.labels):
            raise ModelError(f"the model returned {y.shape[1]} scores for {len(self.labels)} "
                             "labels")
        return to_probabilities(y, quantized=self._quantized_out)

    def predict_proba(self, images: Any) -> np.ndarray:
        """Probabilities (N, C) float32; raises :class:`ImageError` for any unusable image."""
        result = self.preprocess(images)
        if result.errors:
            raise result.errors[0][1]
        return self.run(result.array)

    def predict(self, images: Any, top_k: int = 5, *, strict: bool = True) -> list[Prediction]:
        """Top-``top_k`` classes per image: one :class:`Prediction` per input, in order.

        ``images``: a path, bytes, file object, PIL image or uint8 array, or a list of them
        (a 4-D array is a batch). With ``strict=True`` an unusable image raises
        :class:`ImageError`; with ``strict=False`` it comes back with ``error`` set.
        """
        if not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
        items = _as_list(images)
        result = preprocess_batch(items, self.contract, threads=self.threads)
        if strict and result.errors:
            raise result.errors[0][1]
        return self.predictions(items, result, top_k)

    def predictions(self, items: list, result: BatchResult, top_k: int, *,
                    first: int = 0) -> list[Prediction]:
        """Run a preprocessed batch: one :class:`Prediction` per item of ``items`` (those in
        ``result.errors`` carry their error), indexed from ``first``."""
        probs = self.run(result.array) if result.ok else None
        out: list[Prediction | None] = [None] * len(items)
        k = min(top_k, len(self.labels))
        for row, i in enumerate(result.ok):
            p = probs[row]
            top = np.argsort(-p, kind="stable")[:k]
            out[i] = Prediction(first + i, _source_name(items[i]),
                                tuple(self.labels[c] for c in top),
                                tuple(float(p[c]) for c in top), tuple(int(c) for c in top))
        for i, err in result.errors:
            out[i] = Prediction(first + i, _source_name(items[i]), error=err)
        return out  # type: ignore[return-value]

    # -- lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def __enter__(self) -> "Predictor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"Predictor({str(self.path)!r}, format={self.format!r}, "
                f"provider={self.provider!r}, classes={len(self.labels)}, "
                f"size={self.contract.size})")


def _open_backend(source: ModelSource, device: str, threads: int | None,
                  session_config: dict | None = None) -> Backend:
    if source.format == "tflite":
        from ._tflite import TFLiteBackend
        return TFLiteBackend(source.path, device=device, threads=threads,
                             input_quant=source.input_quant)
    from ._onnx import OnnxBackend
    return OnnxBackend(source.path, device=device, threads=threads,
                       input_quant=source.input_quant, session_config=session_config)


def _merge(first: dict | None, second: dict | None) -> dict | None:
    if not first or not second:
        return first or second
    return {k: first.get(k) or second.get(k) for k in ("labels", "preprocessing")}


def _resolve_labels(arg: Any, meta: dict | None, n_classes: int | None, path: Path) -> list[str]:
    if arg is not None:
        labels = (read_labels_file(arg) if isinstance(arg, (str, os.PathLike))
                  else [str(x) for x in arg])
    elif meta and meta.get("labels"):
        labels = [str(x) for x in meta["labels"]]
    else:
        raise ModelError(f"{path} carries no edgeclf metadata: pass labels= (a list, or a "
                         "labels file with one class per line)")
    if n_classes is not None and len(labels) == n_classes + 1 \
            and labels[0].strip().lower() in BACKGROUND_LABELS:
        labels = labels[1:]
    if not labels or (n_classes is not None and len(labels) != n_classes):
        raise ModelError(f"{len(labels)} labels for a model with {n_classes} outputs ({path})")
    return labels


def _resolve_contract(arg: Any, meta: dict | None, backend: Backend, path: Path) -> Contract:
    try:
        if isinstance(arg, Contract):
            contract = arg
        elif arg is not None:
            contract = Contract.from_dict(arg)
        elif meta and meta.get("preprocessing"):
            contract = Contract.from_dict(meta["preprocessing"])
        elif backend.input_size:
            contract = Contract(size=backend.input_size, resize=FOREIGN_RESIZE,
                                interpolation=FOREIGN_INTERPOLATION)
        else:
            raise ModelError(f"{path} has a dynamic input size and no edgeclf metadata: "
                             "pass contract=Contract(size=(H, W))")
    except (TypeError, ValueError, AttributeError) as e:
        raise ModelError(f"invalid preprocessing contract for {path}: {e}") from None
    if backend.input_size and contract.size != backend.input_size:
        raise ModelError(f"the contract's size {contract.size} does not match the model "
                         f"input {backend.input_size} ({path})")
    return contract
