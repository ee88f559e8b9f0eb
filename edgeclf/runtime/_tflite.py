"""The TFLite backend: ``ai_edge_litert.interpreter.Interpreter`` (imported only when a
``.tflite`` model is loaded); ``tf.lite.Interpreter`` only if LiteRT is absent and TensorFlow
is already installed.

Batches: a model whose batch dimension is dynamic (signature ``-1``, as edgeclf exports) has
its input resized to each chunk's batch size; a model built for a fixed batch of 1 (most
third-party models, e.g. the Coral classifiers) is run image by image -- resizing such a model
is not safe in general (reshape ops may hard-code the batch). The interpreter is not
thread-safe, so calls are serialised with a lock.

Devices: LiteRT runs on CPU (XNNPACK); ``device="gpu"`` raises :class:`DeviceError`,
``"auto"`` runs on CPU.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np

from ._backend import Backend, TensorInfo, check_classifier_io, dequantize, feed
from .errors import DependencyError, DeviceError, ModelError
from .metadata import read_tflite

INSTALL_HINT = "pip install ai-edge-litert (or: pip install 'edgeclf[tflite]')"


def _interpreter_class() -> tuple[type, str]:
    try:
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter, "litert-cpu"
    except ImportError:
        pass
    if importlib.util.find_spec("tensorflow") is not None:
        import tensorflow as tf  # only when LiteRT is absent and TensorFlow is installed
        return tf.lite.Interpreter, "tf.lite-cpu"
    raise DependencyError(f"running .tflite models needs the LiteRT interpreter: {INSTALL_HINT}")


def _tensor(d: dict) -> TensorInfo:
    sig = d.get("shape_signature")
    dims = sig if sig is not None and len(sig) else d["shape"]
    shape = tuple(int(x) if int(x) > 0 else None for x in dims)
    scale, zero_point = d.get("quantization", (0.0, 0))
    return TensorInfo(d["name"], shape, np.dtype(d["dtype"]), float(scale), int(zero_point))


class TFLiteBackend(Backend):
    format = "tflite"

    def __init__(self, path: str | Path, *, device: str = "cpu", threads: int | None = None,
                 input_quant: dict | None = None):
        path = Path(path)
        if device not in ("cpu", "gpu", "auto"):
            raise DeviceError(f"device must be one of ('cpu', 'gpu', 'auto'), got {device!r}")
        if device == "gpu":
            raise DeviceError("the TFLite runtime runs on CPU only; use the ONNX artifact for "
                              "device='gpu', or device='cpu'/'auto'")
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        interpreter_cls, self.provider = _interpreter_class()
        try:
            self.interpreter = interpreter_cls(model_path=str(path), num_threads=threads)
            self.interpreter.allocate_tensors()
        except Exception as e:  # noqa: BLE001 - LiteRT raises ValueError/RuntimeError
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelError(f"{path} is not a usable TFLite model: {first}") from None
        ins = self.interpreter.get_input_details()
        outs = self.interpreter.get_output_details()
        inputs, outputs = [_tensor(d) for d in ins], [_tensor(d) for d in outs]
        check_classifier_io(inputs, outputs, path)
        self.input, self.output = inputs[0], outputs[0]
        self._in_index, self._out_index = ins[0]["index"], outs[0]["index"]
        self._shape = tuple(int(d) for d in ins[0]["shape"])
        self._lock = threading.Lock()
        self.metadata = read_tflite(path)
        self.foreign = self.metadata is None

    def _run(self, pixels: np.ndarray) -> np.ndarray:
        x = feed(pixels, self.input, foreign=self.foreign)
        with self._lock:
            try:
                if tuple(x.shape) != self._shape:  # dynamic batch (or size): resize to fit
                    self.interpreter.resize_tensor_input(self._in_index, list(x.shape),
                                                         strict=False)
                    self.interpreter.allocate_tensors()
                    self._shape = tuple(x.shape)
                self.interpreter.set_tensor(self._in_index, x)
                self.interpreter.invoke()
                y = self.interpreter.get_tensor(self._out_index).copy()
            except Exception as e:  # noqa: BLE001 - a model that fails at run time
                raise ModelError(f"the TFLite interpreter failed to run the model: {e}") from None
        return dequantize(y, self.output)

    def close(self) -> None:
        self.interpreter = None
