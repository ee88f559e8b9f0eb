"""SavedModel export: a ``serving_default`` signature with a dynamic batch dimension.

Input ``image`` float32 (None, H, W, 3) holding 0..255 RGB; output ``probabilities``
float32 (None, C). Labels and the preprocessing contract go to ``assets.extra/``.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from edgeclf.errors import ExportError
from edgeclf.runtime.metadata import write_savedmodel_assets

from .utils import INPUT_NAME, OUTPUT_NAME, converter_versions, import_keras, input_spec

if TYPE_CHECKING:
    from .context import ExportContext

log = logging.getLogger(__name__)

SIGNATURE = "serving_default"


def write_savedmodel(model, size: tuple[int, int], path: Path) -> None:
    """Keras's ExportArchive with one ``serving_default`` endpoint (dynamic batch)."""
    keras = import_keras()

    def serve(image):
        return {OUTPUT_NAME: model(image, training=False)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SIGNATURE, serve, input_signature=[input_spec(size)])
    try:
        archive.write_out(str(path), verbose=False)
    except Exception as e:  # TensorFlow raises many unrelated types while saving
        raise ExportError(f"SavedModel export failed: {type(e).__name__}: {e}") from e


def export_savedmodel(ctx: "ExportContext", path: Path, quantization: str) -> dict:
    """Write the SavedModel directory at ``path``; returns the converter versions.

    The SavedModel is traced once per export (``traced_savedmodel(ctx)``, also the TFLite
    converter's input) and copied here with the edgeclf assets added."""
    if quantization != "none":
        raise ExportError(f"savedmodel supports quantization 'none' only, got {quantization!r}")
    shutil.copytree(traced_savedmodel(ctx), path)
    write_savedmodel_assets(path, ctx.meta)
    return converter_versions("tensorflow", "keras")


def describe_savedmodel(path: Path) -> tuple[list[dict], list[dict]]:
    """Describe the ``serving_default`` signature from ``saved_model.pb`` (a protobuf
    parse: loading the whole model in TensorFlow takes as long as writing it)."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString((path / "saved_model.pb").read_bytes())
        signature = proto.meta_graphs[0].signature_def[SIGNATURE]
    except (OSError, IndexError, KeyError, ValueError) as e:
        raise ExportError(f"the exported SavedModel {path} has no readable {SIGNATURE} "
                          f"signature: {e}") from e
    inputs = [_spec(name, info) for name, info in sorted(signature.inputs.items())]
    outputs = [_spec(name, info) for name, info in sorted(signature.outputs.items())]
    if [i["name"] for i in inputs] != [INPUT_NAME]:
        raise ExportError(f"SavedModel signature inputs are {[i['name'] for i in inputs]}, "
                          f"expected [{INPUT_NAME!r}]")
    return inputs, outputs


def _spec(name: str, info) -> dict:
    import tensorflow as tf

    dims = [d.size if d.size >= 0 else None for d in info.tensor_shape.dim]
    return {"name": name, "shape": dims, "dtype": tf.dtypes.as_dtype(info.dtype).name}


def traced_savedmodel(ctx: "ExportContext") -> Path:
    """A plain SavedModel of the float32 model, traced once per export (the TFLite and ONNX
    converters' input)."""
    def make() -> Path:
        path = ctx.work_dir / "saved_model"
        write_savedmodel(ctx.model, ctx.size, path)
        return path
    return ctx.memo("savedmodel", make)
