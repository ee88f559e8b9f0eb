"""Full-integer TFLite quantization with activation ranges measured without buffer reuse.

The TFLite converter calibrates by running the float model in its interpreter and reading
each tensor's range after every op. Ops that run in place (the ADD of a residual
connection, the ADD after an input rescaling's MUL) write into their input's buffer, so the
range recorded for that input also covers the *later* op's values. Measured on MobileNetV2
(flowers): 11 of 68 ranges were too wide, among them the input rescaling ``x / 127.5``,
recorded as [-1, 2] instead of [0, 2], which drops a third of the 256 input levels before
the first convolution.

So edgeclf calibrates in three steps, each done by the converter's own pieces but the
middle one:

1. the converter's calibration pass (``_experimental_calibrate_only``): a float model
   annotated with every tensor that needs a range;
2. that model runs on the calibration images with every tensor preserved (no buffer
   reuse): each tensor's true min/max, and a histogram of a seeded sample of its values;
   inner activations (after the first convolution, before the softmax) are clipped to the
   ``PERCENTILE`` of their values, so that rare outliers do not widen the step for all
   images; the input, the preprocessing and the logits keep their full range;
3. the converter's MLIR quantizer (``mlir_quantize``) quantizes with these ranges.

Steps 1 and 3 use TensorFlow internals (the same ones ``tf.lite.experimental.
QuantizationDebugger`` uses); where a TensorFlow lacks them the plain converter path runs
and a warning says so.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

log = logging.getLogger(__name__)

#: upper (and, for signed tensors, lower) percentile kept for inner activations
PERCENTILE = 99.999
#: histogram bins per tensor, and values sampled per tensor per calibration image
BINS = 4096
SAMPLES_PER_IMAGE = 4096
#: ops whose outputs stay unclipped when they come before the first convolution
_CONV_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")


@dataclass
class RangeStats:
    """What was measured and changed, for the manifest."""

    tensors: int = 0
    corrected: int = 0          # converter's range wider than the true one (buffer reuse)
    clipped: int = 0            # inner activations narrowed to the percentile

    def to_dict(self, percentile: float) -> dict:
        return {"method": "minmax-unshared-buffers+percentile", "percentile": percentile,
                "tensors": self.tensors, "ranges_corrected": self.corrected,
                "ranges_clipped": self.clipped}


def percentile_range(counts: np.ndarray, lo: float, hi: float, true_lo: float,
                     true_hi: float, percentile: float) -> tuple[float, float]:
    """The range holding ``percentile`` % of the histogram's mass at the top (and at the
    bottom when the tensor is signed), never wider than the true range, and reaching zero
    where the tensor takes both signs or only negative values (int8 represents zero
    exactly; the quantizer widens any range to include it)."""
    total = counts.sum()
    if total == 0 or hi <= lo:
        return true_lo, true_hi
    width = (hi - lo) / len(counts)
    cum = np.cumsum(counts) / total
    top = lo + (np.searchsorted(cum, percentile / 100.0) + 1) * width
    new_hi = max(0.0, min(true_hi, top))
    new_lo = true_lo
    if true_lo < 0:
        bottom = lo + np.searchsorted(cum, 1.0 - percentile / 100.0) * width
        new_lo = min(0.0, max(true_lo, bottom))
    return float(new_lo), float(new_hi)


def _op_names(model) -> list[str]:
    from tensorflow.lite.python import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    return [names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "?")
            for code in model.operatorCodes]


def _unclipped(model) -> set[int]:
    """Tensors whose full range is kept: the inputs, whatever precedes the first
    convolution (preprocessing), SOFTMAX inputs (logits) and the outputs."""
    graph = model.subgraphs[0]
    names = _op_names(model)
    keep = set(int(i) for i in graph.inputs) | set(int(i) for i in graph.outputs)
    seen_conv = False
    for op in graph.operators:
        name = names[op.opcodeIndex]
        if name in _CONV_OPS:
            seen_conv = True
        if not seen_conv and name not in _CONV_OPS:
            keep.update(int(i) for i in op.outputs)
        if name == "SOFTMAX":
            keep.update(int(i) for i in op.inputs if i >= 0)
    return keep


def measure_ranges(calibrated: bytes, images: Iterable[np.ndarray], *,
                   percentile: float = PERCENTILE, seed: int = 0) -> tuple[bytes, RangeStats]:
    """Re-measure the range of every annotated tensor of the converter's calibrated model
    ``calibrated`` on ``images`` (float32 batches of one), with no buffer shared between
    tensors; return the model with the new ranges and what changed."""
    from tensorflow.lite.tools import flatbuffer_utils

    from .tflite import interpreter_class

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated))
    graph = model.subgraphs[0]
    ranged = [i for i, t in enumerate(graph.tensors)
              if t.quantization is not None and t.quantization.min is not None
              and len(t.quantization.min) == 1]
    old = {i: (float(graph.tensors[i].quantization.min[0]),
               float(graph.tensors[i].quantization.max[0])) for i in ranged}
    with warnings.catch_warnings():   # "intended for debugging": here it is the point
        warnings.simplefilter("ignore", UserWarning)
        interp = interpreter_class()(model_content=calibrated,
                                     experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    index = interp.get_input_details()[0]["index"]
    rng = np.random.default_rng(seed)
    true_lo = {i: np.inf for i in ranged}
    true_hi = {i: -np.inf for i in ranged}
    counts = {i: np.zeros(BINS, np.int64) for i in ranged}
    n = 0
    for batch in images:
        interp.set_tensor(index, np.ascontiguousarray(batch, np.float32))
        interp.invoke()
        n += 1
        for i in ranged:
            values = interp.get_tensor(i).ravel()
            true_lo[i] = min(true_lo[i], float(values.min()))
            true_hi[i] = max(true_hi[i], float(values.max()))
            lo, hi = old[i]
            if hi > lo:
                sample = values[rng.integers(0, values.size, min(SAMPLES_PER_IMAGE,
                                                                  values.size))]
                bins = ((sample - lo) * (BINS / (hi - lo))).astype(np.int64)
                counts[i] += np.bincount(np.clip(bins, 0, BINS - 1), minlength=BINS)
    stats = RangeStats(tensors=len(ranged))
    if n == 0:
        return calibrated, stats
    keep = _unclipped(model)
    for i in ranged:
        lo, hi = true_lo[i], true_hi[i]
        tolerance = 1e-4 * max(1.0, abs(old[i][0]), abs(old[i][1]))
        if old[i][0] < lo - tolerance or old[i][1] > hi + tolerance:
            stats.corrected += 1
        if i not in keep:
            clipped = percentile_range(counts[i], *old[i], lo, hi, percentile)
            stats.clipped += clipped != (lo, hi)
            lo, hi = clipped
        quant = graph.tensors[i].quantization
        quant.min = np.array([lo], np.float32)
        quant.max = np.array([hi], np.float32)
    log.info("int8 ranges: %d tensors, %d corrected (buffer reuse), %d clipped to the "
             "%.3f percentile", stats.tensors, stats.corrected, stats.clipped, percentile)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), stats


def quantize_int8(converter: Any, images: Iterable[np.ndarray], io_type: Any, *,
                  percentile: float = PERCENTILE, seed: int = 0) -> tuple[bytes, dict]:
    """Full-integer quantize with ``converter`` (already set up for int8 with its
    representative dataset); return the flatbuffer and the calibration record."""
    try:
        from tensorflow.lite.python.convert import mlir_quantize
    except ImportError:
        mlir_quantize = None
    if mlir_quantize is None or not hasattr(converter, "_experimental_calibrate_only"):
        log.warning("this TensorFlow lacks the converter's calibrate-only pass: int8 uses "
                    "the converter's own activation ranges")
        return converter.convert(), {"method": "converter-minmax"}
    converter._experimental_calibrate_only = True
    calibrated = converter.convert()
    calibrated, stats = measure_ranges(calibrated, images, percentile=percentile, seed=seed)
    quantized = mlir_quantize(calibrated, disable_per_channel=False,
                              input_data_type=io_type, output_data_type=io_type)
    return bytes(quantized), stats.to_dict(percentile)
