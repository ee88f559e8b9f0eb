"""The engine that runs the frozen part of the network while caching: onnxruntime on the
CPU (the frozen sub-model exported in-process with tf2onnx), proven equal to Keras on a
sample of the very images it caches; Keras itself where onnxruntime cannot be used (the
JAX backend, no tf2onnx) or does not agree.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

log = logging.getLogger(__name__)

#: Largest max |onnxruntime - Keras| accepted on the cached values (float32 features of
#: O(1..10) magnitude; a conversion error shows up orders of magnitude above this).
MAX_ABS_DIFF = 1e-3
OPSET = 17


@dataclass
class Engine:
    """``run(batch) -> float32 array``; ``name`` is ``onnxruntime`` or ``keras``."""

    name: str
    run: Callable[[np.ndarray], np.ndarray]
    reason: str
    max_abs_diff: float | None = None
    checked_images: int = 0

    def record(self) -> dict:
        return {"engine": self.name, "reason": self.reason,
                "max_abs_diff_vs_keras": self.max_abs_diff,
                "checked_images": self.checked_images}


def keras_engine(model: Any, reason: str) -> Engine:
    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_on_batch(x), dtype=np.float32)
    return Engine("keras", run, reason)


def to_onnx(model: Any, path: Path) -> None:
    """Convert a (TensorFlow-backend) Keras model with one float32 input to ONNX."""
    import tensorflow as tf

    from edgeclf.deps import import_tf2onnx

    tf2onnx = import_tf2onnx()
    shape = tuple(model.inputs[0].shape[1:])
    spec = (tf.TensorSpec((None, *shape), tf.float32, name="x"),)

    @tf.function(input_signature=spec)
    def serve(x):
        return model(x, training=False)

    tf2onnx.convert.from_function(serve, input_signature=spec, opset=OPSET,
                                  output_path=str(path))


def ort_session(path: Path) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def fastest_engine(model: Any, sample: np.ndarray, *, prefer: str = "auto") -> Engine:
    """onnxruntime when it converts and matches Keras on ``sample`` within
    :data:`MAX_ABS_DIFF`, else Keras (the reason is logged and recorded)."""
    import keras

    if prefer == "keras":
        return keras_engine(model, "requested")
    if keras.backend.backend() != "tensorflow":
        return keras_engine(model, f"the {keras.backend.backend()} backend has no in-process "
                                   "ONNX conversion")
    t0 = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="edgeclf-engine-") as tmp:
            path = Path(tmp) / "frozen.onnx"
            to_onnx(model, path)
            session = ort_session(path)
    except Exception as e:  # noqa: BLE001 - tf2onnx/onnxruntime raise assorted types
        log.warning("onnxruntime engine unavailable (%s: %s); caching with Keras",
                    type(e).__name__, str(e)[:200])
        return keras_engine(model, f"ONNX conversion failed: {type(e).__name__}")
    name = session.get_inputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        return session.run(None, {name: np.ascontiguousarray(x, np.float32)})[0]

    want = np.asarray(model.predict_on_batch(sample), np.float32)
    got = run(sample)
    diff = float(np.abs(want - got).max()) if want.shape == got.shape else float("inf")
    log.info("onnxruntime engine ready in %.1fs; max |onnxruntime - keras| %.3g on %d "
             "images", time.perf_counter() - t0, diff, len(sample))
    if not diff <= MAX_ABS_DIFF:
        log.warning("onnxruntime differs from Keras by %.3g (> %g); caching with Keras",
                    diff, MAX_ABS_DIFF)
        engine = keras_engine(model, f"onnxruntime differs from Keras by {diff:.3g}")
    else:
        engine = Engine("onnxruntime", run, "matches Keras on the checked images")
    engine.max_abs_diff, engine.checked_images = diff, len(sample)
    return engine
