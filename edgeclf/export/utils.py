"""Helpers shared by the exporters: loading Keras under TensorFlow, float32 rebuilds,
the model's serving function, converter versions and CPU features."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from edgeclf.errors import ExportError, ModelError
from edgeclf.machine import cpu_flags, has_fast_int8, package_versions

log = logging.getLogger(__name__)

INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
#: CPU flags that make int8 matrix products faster than float32 in onnxruntime's kernels.


def import_keras() -> Any:
    """Import Keras on the TensorFlow backend (export always runs under TensorFlow)."""
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != "tensorflow":
            raise ExportError(f"export runs under the TensorFlow backend, but Keras was "
                              f"already imported with {keras.backend.backend()!r}; run it "
                              "in a fresh process (KERAS_BACKEND=tensorflow)")
        return keras
    os.environ["KERAS_BACKEND"] = "tensorflow"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import keras
    except ImportError as e:
        raise ExportError(f"export needs TensorFlow and Keras ({e}); install them with "
                          "`pip install 'edgeclf[train]'`") from None
    return keras


def load_checkpoint(path: str | Path) -> Any:
    """The one checkpoint loader (:mod:`edgeclf.inference.checkpoint`: safe mode, never runs
    code from the file), under the TensorFlow backend that export needs."""
    import_keras()
    from edgeclf.inference.checkpoint import load_checkpoint as safe_load

    return safe_load(path)


def check_contract(model: Any, n_classes: int) -> tuple[int, int]:
    """Check the model against the model contract; return its input (height, width)."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelError(f"an edgeclf model has one input and one output; this one has "
                         f"{len(model.inputs)} inputs and {len(model.outputs)} outputs")
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[3] != 3 or None in shape[1:3]:
        raise ModelError(f"model input must be (None, H, W, 3); got {shape}")
    out = tuple(model.outputs[0].shape)
    if len(out) != 2 or out[1] != n_classes:
        raise ModelError(f"model output must be (None, {n_classes}) for {n_classes} labels; "
                         f"got {out}")
    return int(shape[1]), int(shape[2])


def as_float32(model: Any) -> Any:
    """The model itself when it computes in float32; else a float32 rebuild of it.

    Mixed-precision checkpoints keep float32 variables, so the rebuild reuses them as-is.
    """
    keras = import_keras()
    layers = _all_layers(model)
    if all(getattr(layer, "compute_dtype", "float32") == "float32" for layer in layers):
        return model
    log.info("checkpoint uses mixed precision: exporting a float32 copy")
    config = _float32_config(model.get_config())
    clone = model.__class__.from_config(config)
    clone.set_weights([w.astype("float32") for w in model.get_weights()])
    if clone.outputs and keras.backend.standardize_dtype(clone.outputs[0].dtype) != "float32":
        raise ExportError("could not rebuild the mixed-precision model in float32")
    return clone


def _float32_config(config: Any) -> Any:
    if isinstance(config, dict):
        out = {}
        for k, v in config.items():
            if k == "dtype" and _is_mixed_policy(v):
                out[k] = "float32"
            else:
                out[k] = _float32_config(v)
        return out
    if isinstance(config, list):
        return [_float32_config(v) for v in config]
    return config


def _is_mixed_policy(v: Any) -> bool:
    if isinstance(v, str):
        return v.startswith("mixed_")
    if isinstance(v, dict) and v.get("class_name") == "DTypePolicy":
        return str(v.get("config", {}).get("name", "")).startswith("mixed_")
    return False


def _all_layers(model: Any) -> list:
    out = []
    for layer in model.layers:
        out.append(layer)
        if hasattr(layer, "layers"):
            out += _all_layers(layer)
    return out


def input_spec(size: tuple[int, int]) -> Any:
    import tensorflow as tf

    return tf.TensorSpec((None, size[0], size[1], 3), tf.float32, name=INPUT_NAME)


def converter_versions(*names: str) -> dict[str, str]:
    """Versions of the packages that made an artifact (only those installed)."""
    return package_versions(names, installed_only=True)


def int8_speed_warning(flags: frozenset[str] | None = None) -> str | None:
    """Why a quantized ONNX model may be slower than float here, or None."""
    flags = cpu_flags() if flags is None else flags
    if not flags:
        return None
    if has_fast_int8(flags):
        return None
    has = "AVX2" if "avx2" in flags else "no AVX2"
    return (f"this CPU has no VNNI/AMX/dot-product int8 instructions ({has}): "
            "onnxruntime's int8 kernels are expected to be no faster, often slower, than "
            "float32 here; the quantized model mainly saves size")


def import_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ExportError("ONNX export needs the onnx package: "
                          "`pip install 'edgeclf[train]'`") from None
    return onnx


def interpreter_class() -> Any:
    """The TFLite interpreter the embedded runtime uses (LiteRT's, else TensorFlow's)."""
    from edgeclf.runtime._tflite import _interpreter_class

    return _interpreter_class()[0]
