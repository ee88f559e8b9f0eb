"""TFLite export with the TFLite converter: float32, dynamic-range, float16 and full int8.

Built-in ops only (no Select-TF ops). The batch dimension stays dynamic
(``shape_signature`` [-1, H, W, 3]). int8 is full-integer (``TFLITE_BUILTINS_INT8``),
calibrated on the run's training images (activation ranges measured by
``tflite_int8``, which corrects the converter's calibration), with uint8 or int8
input/output: with the 0..255 input, uint8 input has scale 1 and zero point 0 (raw pixels
are the input).
The dynamic and int8 models are then re-serialized with each distinct quantization vector
stored once (``tflite_compact``: lossless; the per-channel zero points are all zeros).
Standard TFLite Metadata is then added to the flatbuffer (``tflite_metadata``: what
MediaPipe Tasks reads) and the associated files (``labels.txt``, ``edgeclf.json``) are
appended as one zip (``edgeclf.runtime.metadata.embed_tflite``). Where the metadata cannot
be written, the artifact is the plain model with the zip, and the reason is logged and
recorded in the manifest entry (``converter.tflite_metadata``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeclf.errors import ExportError
from edgeclf.runtime.metadata import embed_tflite

from .calibration import calibration_set
from .savedmodel import SIGNATURE, traced_savedmodel
from .tflite_compact import COMPACTED, compact_tflite
from .tflite_int8 import quantize_int8
from .tflite_metadata import add_metadata
from .utils import converter_versions, interpreter_class  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    from .context import ExportContext

log = logging.getLogger(__name__)

INT8_IO_TYPES = ("uint8", "int8")
TFLITE_TOOLS = ("tensorflow", "keras", "ai-edge-litert")


def make_converter(ctx: "ExportContext", quantization: str) -> Any:
    """A TFLiteConverter configured for ``quantization``."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(traced_savedmodel(ctx)),
                                                         signature_keys=[SIGNATURE])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization == "none":
        return converter
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        calibration = calibration_set(ctx)
        io_type = {"uint8": tf.uint8, "int8": tf.int8}[ctx.int8_io]

        def representative():
            for batch in calibration.batches(1):
                yield [batch]

        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = io_type
        converter.inference_output_type = io_type
    elif quantization != "dynamic":
        raise ExportError(f"tflite has no quantization {quantization!r}")
    return converter


def export_tflite(ctx: "ExportContext", path: Path, quantization: str) -> dict:
    """Convert, check the integer input parameters, append the metadata."""
    if ctx.int8_io not in INT8_IO_TYPES:
        raise ExportError(f"int8 input/output type must be one of {INT8_IO_TYPES}, "
                          f"got {ctx.int8_io!r}")
    converter = make_converter(ctx, quantization)
    options: dict = {}
    try:
        if quantization == "int8":
            flatbuffer, record = quantize_int8(
                converter, calibration_set(ctx).images, converter.inference_input_type,
                seed=ctx.seed)
            options = {"int8_io": ctx.int8_io, "int8_ranges": record}
        else:
            flatbuffer = converter.convert()
    except Exception as e:  # the MLIR converter raises ConverterError and others
        raise ExportError(f"TFLite conversion ({quantization}) failed: "
                          f"{type(e).__name__}: {str(e)[:2000]}") from e
    if quantization in COMPACTED:
        flatbuffer, compacted = compact_tflite(flatbuffer)
        if compacted is not None:
            options["compacted"] = compacted
    if quantization == "int8":
        check_int8_input(flatbuffer, ctx.int8_io)
    with_metadata, reason = add_metadata(flatbuffer, ctx.meta)
    if with_metadata is None:
        log.warning("%s: standard TFLite metadata not written (%s); the model keeps edgeclf's "
                    "labels and contract in its appended zip only", path.name, reason)
        options["tflite_metadata"] = {"written": False, "reason": reason}
    else:
        flatbuffer = with_metadata
        options["tflite_metadata"] = {"written": True}
    path.write_bytes(flatbuffer)
    embed_tflite(path, ctx.meta)
    return {**converter_versions(*TFLITE_TOOLS), **options}


def _interpreter(model: bytes | Path) -> Any:
    Interpreter = interpreter_class()
    if isinstance(model, Path):
        return Interpreter(model_path=str(model))
    return Interpreter(model_content=model)


def check_int8_input(flatbuffer: bytes, io_type: str) -> None:
    """uint8 input must be scale 1 / zero point 0 (int8: scale 1 / zero point -128)."""
    detail = _interpreter(flatbuffer).get_input_details()[0]
    scale, zero = detail["quantization"]
    expected_zero = 0 if io_type == "uint8" else -128
    if abs(scale - 1.0) > 1e-6 or zero != expected_zero:
        raise ExportError(f"int8 TFLite input quantization is scale {scale}, zero point "
                          f"{zero}; the model contract needs scale 1, zero point "
                          f"{expected_zero} (does the calibration data span 0..255?)")


def describe_tflite(path: Path) -> tuple[list[dict], list[dict]]:
    """Load the model in the TFLite interpreter and describe its inputs and outputs."""
    try:
        interp = _interpreter(path)
    except (ValueError, RuntimeError) as e:
        raise ExportError(f"the exported TFLite model {path.name} does not load: {e}") from e
    return ([_io(d) for d in interp.get_input_details()],
            [_io(d) for d in interp.get_output_details()])


def _io(detail: dict) -> dict:
    import numpy as np

    shape = [int(d) if d >= 0 else None for d in detail["shape_signature"]]
    out = {"name": detail["name"], "shape": shape, "dtype": np.dtype(detail["dtype"]).name}
    scale, zero = detail["quantization"]
    if scale:
        out["scale"], out["zero_point"] = float(scale), int(zero)
    return out
