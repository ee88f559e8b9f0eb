"""What the predictor needs from an inference engine, and the rules shared by all engines.

A backend wraps one loaded model (an onnxruntime session or a LiteRT interpreter) and turns a
uint8 NHWC batch (float pixels too, for a float-input model) into the model's raw output as float32 ``(N, C)``: it feeds the input in the
model's own dtype (quantizing for integer models) and dequantizes integer outputs.

Input quantization rule (integer-input models):

- a model with edgeclf metadata: the pixels 0..255 are the real input values, so
  ``q = round(pixel / scale) + zero_point`` with the tensor's scale and zero point (edgeclf's
  integer artifacts use scale 1, zero point 0: the raw pixels);
- a model without edgeclf metadata (e.g. the Coral/TF-Hub classifiers): its quantization maps
  the raw pixels onto the network's own normalisation, so uint8 input gets the raw pixels and
  int8 input gets ``pixel - 128``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

from .errors import ModelError

#: Batch size used when a model accepts any batch: large batches run in chunks of this size.
MAX_CHUNK = 32


@dataclass(frozen=True)
class TensorInfo:
    """One model input or output as the predictor sees it."""

    name: str
    shape: tuple[int | None, ...]      # None for a dynamic dimension
    dtype: np.dtype
    scale: float = 0.0                 # 0: not quantized (or unknown)
    zero_point: int = 0


def check_classifier_io(inputs: list[TensorInfo], outputs: list[TensorInfo],
                        path: object) -> None:
    """Raise :class:`ModelError` unless the model is one NHWC image in, one (N, C) out."""
    if len(inputs) != 1:
        raise ModelError(f"{path}: an image classifier has one input; this model has "
                         f"{len(inputs)} ({', '.join(t.name for t in inputs)})")
    if len(outputs) != 1:
        raise ModelError(f"{path}: an image classifier has one (N, classes) output; this "
                         f"model has {len(outputs)} ({', '.join(t.name for t in outputs)})")
    inp, out = inputs[0], outputs[0]
    if len(inp.shape) != 4 or inp.shape[3] not in (3, None):
        hint = (" (this looks like NCHW; edgeclf runs NHWC models)"
                if len(inp.shape) == 4 and inp.shape[1] == 3 else "")
        raise ModelError(f"{path}: input {inp.name!r} has shape {_fmt(inp.shape)}; expected "
                         f"(N, H, W, 3){hint}")
    if inp.dtype not in (np.float32, np.float16, np.uint8, np.int8):
        raise ModelError(f"{path}: input dtype {inp.dtype} is not supported "
                         "(float32, float16, uint8 or int8)")
    if len(out.shape) != 2:
        raise ModelError(f"{path}: output {out.name!r} has shape {_fmt(out.shape)}; expected "
                         "(N, classes)")


def _fmt(shape: tuple) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def feed(pixels: np.ndarray, inp: TensorInfo, *, foreign: bool) -> np.ndarray:
    """Convert a pixel batch to what the model's input tensor takes (module docstring):
    uint8 pixels for any model, float pixels (0..255 with fractions) for a float model."""
    if inp.dtype in (np.float32, np.float16):
        return pixels.astype(inp.dtype, copy=False)
    if pixels.dtype != np.uint8:
        raise ModelError(f"this model takes {inp.dtype} input; it cannot be fed "
                         f"{pixels.dtype} pixels without rounding them")
    if foreign or inp.scale <= 0:
        if inp.dtype == np.uint8:
            return pixels            # raw pixels (edgeclf's uint8-input graphs): no copy
        return (pixels.astype(np.int16) - 128).astype(inp.dtype)
    info = np.iinfo(inp.dtype)
    q = np.round(pixels.astype(np.float32) / inp.scale) + inp.zero_point
    return np.clip(q, info.min, info.max).astype(inp.dtype)


def dequantize(y: np.ndarray, out: TensorInfo) -> np.ndarray:
    """Integer outputs become real values with the tensor's scale and zero point."""
    if y.dtype == np.float32:
        return y
    if np.issubdtype(y.dtype, np.integer) and out.scale > 0:
        return ((y.astype(np.float32) - out.zero_point) * out.scale).astype(np.float32)
    return y.astype(np.float32, copy=False)


class Backend(abc.ABC):
    """Base of the ONNX and TFLite backends (see ``_onnx.py``, ``_tflite.py``)."""

    format: str = ""
    provider: str = ""
    input: TensorInfo
    output: TensorInfo
    metadata: dict | None = None
    foreign: bool = False

    @property
    def fixed_batch(self) -> int | None:
        """The batch size the model was built for, or None when any batch size works."""
        return self.input.shape[0]

    @property
    def input_size(self) -> tuple[int, int] | None:
        h, w = self.input.shape[1:3]
        return (h, w) if h and w else None

    @property
    def num_classes(self) -> int | None:
        return self.output.shape[1]

    @property
    def output_is_quantized(self) -> bool:
        return np.issubdtype(self.output.dtype, np.integer) and self.output.scale > 0

    def run(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, 3) -> float32 (N, C) raw (dequantized) model outputs.

        A model built for a fixed batch size gets chunks of exactly that size (the last one
        padded with black images whose outputs are dropped); others get chunks of up to
        :data:`MAX_CHUNK` images.
        """
        fixed = self.fixed_batch
        step = fixed or MAX_CHUNK
        if len(pixels) == step or (not fixed and 0 < len(pixels) <= step):
            return self._run(pixels)     # one chunk as it is: no list, no concatenation
        parts = []
        for i in range(0, len(pixels), step):
            chunk = pixels[i:i + step]
            n = len(chunk)
            if fixed and n < fixed:
                chunk = np.concatenate([chunk, np.zeros((fixed - n, *chunk.shape[1:]),
                                                        chunk.dtype)])
            parts.append(self._run(chunk)[:n])
        if not parts:
            return np.zeros((0, self.num_classes or 0), np.float32)
        return np.concatenate(parts, axis=0)

    @abc.abstractmethod
    def _run(self, pixels: np.ndarray) -> np.ndarray:
        """Run one chunk of uint8 pixels; return float32 (n, C) dequantized outputs."""

    def close(self) -> None:
        """Release the engine's resources."""
