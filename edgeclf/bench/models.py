"""Opening a model for `edgeclf bench`: the predictor, and the baselines it is compared to.

Each opener takes a job (a :class:`~edgeclf.bench.plan.Job`) and returns an :class:`Opened`:
the provider that really runs, the input size, ``infer(uint8 batch) -> probabilities``,
and ``imported_at`` (when the libraries were imported, so cold start can leave the import
out and report it apart). Heavy libraries are imported here, lazily, never at package import.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from edgeclf.bench.plan import Job
from edgeclf.errors import ConfigError, DeviceError, ModelError


class Opened:
    """A loaded model, ready to time."""

    def __init__(self, *, provider: str, size: tuple[int, int],
                 infer: Callable[[np.ndarray], Any], imported_at: float,
                 preprocess: Callable[[list], Any] | None = None, keep: Any = None,
                 quantization: str | None = None):
        self.provider = provider
        self.quantization = quantization     # what the model says, for a bare model file
        self.size = (int(size[0]), int(size[1]))
        self.infer = infer
        self.imported_at = imported_at
        self.preprocess = preprocess
        self._keep = keep            # whatever must stay alive (session, model, interpreter)

    def bind(self, x: np.ndarray) -> Callable[[], Any]:
        """The zero-argument call that is timed for batch ``x``."""
        return lambda: self.infer(x)

    def gpu_memory_mb(self) -> float | None:
        return None

    def close(self) -> None:
        self._keep = None


def _import_backend(fmt: str) -> None:
    if fmt == "onnx":
        import onnxruntime  # noqa: F401
    else:
        try:
            import ai_edge_litert.interpreter  # noqa: F401
        except ImportError:
            import tensorflow  # noqa: F401


def open_predictor(job: Job) -> Opened:
    """The artifact through :class:`edgeclf.runtime.Predictor`, exactly as users embed it."""
    _import_backend(job.format)
    from edgeclf.runtime import Predictor
    from edgeclf.runtime.metadata import read_labels_file

    imported_at = time.perf_counter()
    baseline = None
    if job.device == "gpu":
        from edgeclf.bench.gpu import device_memory_used_mb

        baseline = device_memory_used_mb()
        imported_at = time.perf_counter()
    labels = read_labels_file(job.labels) if job.labels else None
    if job.source:      # a manifest artifact: resolved (and hash-checked) as users do
        pred = Predictor.from_path(job.source, device=job.device,
                                   threads=job.threads, labels=labels,
                                   format=job.format, quantization=job.quantization)
    else:
        pred = Predictor.from_path(job.path, device=job.device, threads=job.threads,
                                   labels=labels)
    if job.device == "gpu":
        from edgeclf.bench.gpu import is_gpu_provider

        if not is_gpu_provider(pred.provider):
            raise DeviceError(f"a GPU run was requested but the predictor runs on "
                              f"{pred.provider}")
    opened = Opened(provider=pred.provider, size=pred.contract.size, infer=pred.run,
                    imported_at=imported_at, preprocess=pred.preprocess, keep=pred,
                    quantization=getattr(pred, "quantization", None))
    if job.device == "gpu":
        with_gpu_memory(opened, baseline)
    return opened


def with_gpu_memory(opened: Opened, baseline_mb: float | None) -> Opened:
    """Report this process's device memory; where nvidia-smi cannot attribute memory to a
    process, the growth of GPU 0's used memory since ``baseline_mb`` (taken before the model
    was loaded)."""
    from edgeclf.bench.gpu import device_memory_used_mb, process_gpu_memory_mb

    def measure() -> float | None:
        own = process_gpu_memory_mb()
        if own is not None:
            return own
        used = device_memory_used_mb()
        return None if used is None or baseline_mb is None else round(used - baseline_mb, 1)

    opened.gpu_memory_mb = measure                    # type: ignore[method-assign]
    return opened


def _tensorflow(threads: int) -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    th = tf.config.threading
    if (th.get_intra_op_parallelism_threads(), th.get_inter_op_parallelism_threads()) \
            != (threads, 1):
        try:
            th.set_intra_op_parallelism_threads(threads)
            th.set_inter_op_parallelism_threads(1)
            tf.config.set_visible_devices([], "GPU")   # the TF baselines are CPU figures
        except RuntimeError:
            raise ConfigError(
                f"TensorFlow already runs in this process with "
                f"{th.get_intra_op_parallelism_threads()} intra-op threads and cannot switch "
                f"to {threads}: run the bench isolated (the default), not in-process") from None
    return tf


def open_keras(job: Job, *, direct: bool) -> Opened:
    """The checkpoint in Keras: ``model.predict`` or a direct ``model(x)`` call."""
    if job.device != "cpu":
        raise DeviceError("the Keras baselines are CPU figures in edgeclf bench")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if os.environ["KERAS_BACKEND"] == "tensorflow":
        _tensorflow(job.threads)
    import keras

    from edgeclf.inference import load_checkpoint

    imported_at = time.perf_counter()
    model = load_checkpoint(job.path)
    size = tuple(model.input_shape[1:3])
    if direct:
        def infer(x: np.ndarray) -> np.ndarray:
            return np.asarray(model(x.astype(np.float32), training=False))
    else:
        def infer(x: np.ndarray) -> np.ndarray:
            return model.predict(x.astype(np.float32), batch_size=len(x), verbose=0)
    return Opened(provider=f"keras-{keras.backend.backend()}-cpu", size=size, infer=infer,
                  imported_at=imported_at, keep=model)


def open_savedmodel(job: Job) -> Opened:
    """The exported SavedModel through TensorFlow: its ``serving_default`` signature as eval
    and parity run it (:func:`edgeclf.inference.savedmodel.load_serving_function`)."""
    if job.device != "cpu":
        raise DeviceError("the SavedModel baseline is a CPU figure in edgeclf bench")
    _tensorflow(job.threads)
    from edgeclf.inference.savedmodel import load_serving_function

    imported_at = time.perf_counter()
    serving = load_serving_function(job.path)
    if None in serving.input_size:
        raise ModelError(f"{job.path}: serving_default has no fixed image size "
                         f"({serving.input_size}); bench needs one to make its inputs")
    return Opened(provider="tensorflow-cpu", size=serving.input_size, infer=serving.run,
                  imported_at=imported_at, keep=serving)


def _interpreter_class() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter
    except ImportError:
        import tensorflow as tf

        return tf.lite.Interpreter


def open_tflite_xnnpack(job: Job) -> Opened:
    """A bare LiteRT interpreter (default delegates: XNNPACK) on the .tflite file."""
    if job.device != "cpu":
        raise DeviceError("TFLite runs on CPU in edgeclf bench")
    Interpreter = _interpreter_class()
    imported_at = time.perf_counter()
    try:
        interp = Interpreter(model_path=job.path, num_threads=job.threads)
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise ModelError(f"{job.path}: LiteRT cannot load it ({e})") from None
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    sig = inp.get("shape_signature", inp["shape"])
    fixed = int(inp["shape"][0]) if int(sig[0]) > 0 else None   # batch baked into the model
    state = {"batch": int(inp["shape"][0])}
    dtype = inp["dtype"]

    def invoke(x: np.ndarray) -> np.ndarray:
        if x.shape[0] != state["batch"]:
            interp.resize_tensor_input(inp["index"], list(x.shape), strict=False)
            interp.allocate_tensors()
            state["batch"] = x.shape[0]
        if dtype == np.int8:
            x = (x.astype(np.int16) - 128).astype(np.int8)
        elif dtype != np.uint8:
            x = x.astype(dtype)
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        return interp.get_tensor(out["index"])

    def infer(x: np.ndarray) -> np.ndarray:
        if fixed is None or len(x) == fixed:
            return invoke(x)
        # a fixed-batch model (e.g. Coral's) runs a larger batch as fixed-size invocations,
        # as any caller must (XNNPACK cannot reshape it), like the predictor does
        parts = []
        for i in range(0, len(x), fixed):
            chunk = x[i:i + fixed]
            if len(chunk) < fixed:
                chunk = np.concatenate([chunk, np.zeros((fixed - len(chunk), *x.shape[1:]),
                                                        x.dtype)])
            parts.append(invoke(chunk)[:len(x) - i].copy())
        return np.concatenate(parts)

    return Opened(provider="litert-xnnpack-cpu", size=tuple(inp["shape"][1:3]), infer=infer,
                  imported_at=imported_at, keep=interp,
                  quantization="int8" if np.issubdtype(dtype, np.integer) else None)


def open_onnx_bare(job: Job) -> Opened:
    """A bare onnxruntime session on the .onnx file: default session options but the
    thread count, the input converted to the model's dtype per call (as any caller must),
    raw outputs. The predictor row on the same file minus this one is its own overhead."""
    if job.device != "cpu":
        raise DeviceError("the bare onnxruntime baseline is a CPU figure in edgeclf bench")
    import onnxruntime as ort

    imported_at = time.perf_counter()
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(job.threads)
    try:
        sess = ort.InferenceSession(job.path, so, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types
        raise ModelError(f"{job.path}: onnxruntime cannot load it ({e})") from None
    inp, out = sess.get_inputs()[0], sess.get_outputs()[0]
    dtype = {"tensor(uint8)": np.uint8, "tensor(float16)": np.float16,
             "tensor(float)": np.float32}.get(inp.type)
    if dtype is None:
        raise ModelError(f"{job.path}: the bare baseline feeds uint8 or float pixels; "
                         f"this model takes {inp.type}")
    if len(inp.shape) != 4 or not all(isinstance(d, int) for d in inp.shape[1:3]):
        raise ModelError(f"{job.path}: the bare baseline needs a fixed (N, H, W, 3) input")

    def infer(x: np.ndarray) -> np.ndarray:
        return sess.run([out.name], {inp.name: x.astype(dtype, copy=False)})[0]

    return Opened(provider="onnxruntime-bare-cpu", size=tuple(inp.shape[1:3]), infer=infer,
                  imported_at=imported_at, keep=sess)


RUNNERS: dict[str, Callable[[Job], Opened]] = {
    "predictor": open_predictor,
    "keras-predict": lambda job: open_keras(job, direct=False),
    "keras-call": lambda job: open_keras(job, direct=True),
    "savedmodel": open_savedmodel,
    "tflite-xnnpack": open_tflite_xnnpack,
    "onnx-bare": open_onnx_bare,
}
