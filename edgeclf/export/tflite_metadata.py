"""Standard TFLite Metadata (the ``TFLITE_METADATA`` schema, file identifier ``M001``).

The schema MediaPipe Tasks, the LiteRT support library and Android Studio's ML binding read:
a ``ModelMetadata`` flatbuffer stored in one of the model's buffers and named by a
``Model.metadata`` entry, plus the associated files in a zip appended to the flatbuffer.
edgeclf writes

- the model's name and description (classes, input size, the contract's resize),
- input: ``ImageProperties`` (RGB), ``NormalizationOptions`` mean 0 / std 1 (the model takes
  0..255 pixel values; its normalisation is inside the graph), ``Stats`` 0..255,
- output: ``FeatureProperties``, ``Stats`` 0..1 and ``labels.txt`` as a
  ``TENSOR_AXIS_LABELS`` associated file,
- ``edgeclf.json`` (labels + preprocessing contract) as a model-level associated file,

both files in the same appended zip (``edgeclf.runtime.metadata.embed_tflite``).

No maintained writer installs beside TensorFlow here (``tflite-support`` 0.4.4 pins
protobuf < 4; MediaPipe 1.2.3's ``metadata_writers`` fails on import), so the tables are
built with ``flatbuffers`` from the schema's field slots (``metadata_schema.fbs``, as in
MediaPipe's generated ``metadata_schema_py_generated``), and the tests read them back with
that generated code and load the artifacts in MediaPipe's ``ImageClassifier``.
"""

from __future__ import annotations

import logging
from typing import Any

from .tflite_compact import _builder_class, _wrap, same_tables

log = logging.getLogger(__name__)

METADATA_NAME = b"TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
MIN_PARSER_VERSION = "1.0.0"     # no table or field newer than the schema's first version
LABELS_FILE = "labels.txt"
SIDECAR_FILE = "edgeclf.json"
_TFLITE_IDENTIFIER = b"TFL3"

# enum values of metadata_schema.fbs
_RGB = 1                          # ColorSpaceType.RGB
_FEATURE_PROPERTIES, _IMAGE_PROPERTIES = 1, 2      # ContentProperties
_NORMALIZATION_OPTIONS = 1        # ProcessUnitOptions
_UNKNOWN_FILE, _TENSOR_AXIS_LABELS = 0, 2          # AssociatedFileType


class _Tables:
    """Writes metadata_schema.fbs tables: ``table(n_slots, {slot: (kind, value)})``."""

    def __init__(self) -> None:
        import flatbuffers

        self.b = flatbuffers.Builder(1024)

    def string(self, s: str) -> int:
        return self.b.CreateString(s)

    def floats(self, values: list[float]) -> int:
        import numpy as np

        return self.b.CreateNumpyVector(np.asarray(values, dtype="<f4"))

    def offsets(self, items: list[int]) -> int:
        self.b.StartVector(4, len(items), 4)
        for item in reversed(items):
            self.b.PrependUOffsetTRelative(item)
        return self.b.EndVector()

    def table(self, n_slots: int, fields: dict[int, tuple[str, Any]]) -> int:
        self.b.StartObject(n_slots)
        for slot, (kind, value) in fields.items():
            if kind == "offset":
                self.b.PrependUOffsetTRelativeSlot(slot, value, 0)
            elif kind == "int8":
                self.b.PrependInt8Slot(slot, value, 0)
            else:                                    # "uint8": union type tags
                self.b.PrependUint8Slot(slot, value, 0)
        return self.b.EndObject()


def _associated_file(t: _Tables, name: str, description: str, kind: int) -> int:
    name_o, desc_o = t.string(name), t.string(description)
    return t.table(5, {0: ("offset", name_o), 1: ("offset", desc_o), 2: ("int8", kind)})


def _stats(t: _Tables, low: float, high: float) -> int:
    max_o, min_o = t.floats([high]), t.floats([low])
    return t.table(2, {0: ("offset", max_o), 1: ("offset", min_o)})


def _input_tensor(t: _Tables, size: tuple[int, int], resize: str) -> int:
    name, how = t.string("image"), t.string(
        f"RGB image, {size[1]}x{size[0]} pixels, values 0..255. "
        + ("Centre-crop to the model's aspect ratio before resizing (edgeclf's contract); "
           "pass that crop as the region of interest." if resize == "crop" else
           "Resize the whole image to this size (edgeclf's contract)."))
    props = t.table(2, {0: ("int8", _RGB)})
    content = t.table(3, {0: ("uint8", _IMAGE_PROPERTIES), 1: ("offset", props)})
    mean, std = t.floats([0.0]), t.floats([1.0])
    norm = t.table(2, {0: ("offset", mean), 1: ("offset", std)})
    unit = t.table(2, {0: ("uint8", _NORMALIZATION_OPTIONS), 1: ("offset", norm)})
    units, stats = t.offsets([unit]), _stats(t, 0.0, 255.0)
    return t.table(7, {0: ("offset", name), 1: ("offset", how), 3: ("offset", content),
                       4: ("offset", units), 5: ("offset", stats)})


def _output_tensor(t: _Tables) -> int:
    name = t.string("probability")
    desc = t.string("Probability of each class (softmax), in the order of labels.txt.")
    props = t.table(0, {})
    content = t.table(3, {0: ("uint8", _FEATURE_PROPERTIES), 1: ("offset", props)})
    stats = _stats(t, 0.0, 1.0)
    files = t.offsets([_associated_file(t, LABELS_FILE, "One class name per line, in the "
                                        "order of the output.", _TENSOR_AXIS_LABELS)])
    return t.table(7, {0: ("offset", name), 1: ("offset", desc), 3: ("offset", content),
                       5: ("offset", stats), 6: ("offset", files)})


def describe_model(meta: dict) -> str:
    labels, contract = meta["labels"], meta["preprocessing"]
    h, w = contract["size"]
    shown = ", ".join(labels[:10]) + (f" and {len(labels) - 10} more" if len(labels) > 10
                                      else "")
    return (f"Image classifier made by edgeclf: {len(labels)} classes ({shown}). Input "
            f"{w}x{h} RGB, {contract.get('resize', 'crop')} resize, "
            f"{contract.get('interpolation', 'bilinear')} interpolation.")


def metadata_flatbuffer(meta: dict) -> bytes:
    """The ``ModelMetadata`` flatbuffer (identifier ``M001``) describing an edgeclf model."""
    from edgeclf import __version__

    t = _Tables()
    contract = meta["preprocessing"]
    inputs = t.offsets([_input_tensor(t, tuple(contract["size"]),
                                      contract.get("resize", "crop"))])
    outputs = t.offsets([_output_tensor(t)])
    subgraph = t.table(10, {2: ("offset", inputs), 3: ("offset", outputs)})
    subgraphs = t.offsets([subgraph])
    sidecar = t.offsets([_associated_file(
        t, SIDECAR_FILE, "edgeclf metadata: labels and the preprocessing contract (JSON).",
        _UNKNOWN_FILE)])
    name, desc = t.string("edgeclf image classifier"), t.string(describe_model(meta))
    version = t.string(str(meta.get("edgeclf_version") or __version__))
    author, parser = t.string("edgeclf"), t.string(MIN_PARSER_VERSION)
    root = t.table(8, {0: ("offset", name), 1: ("offset", desc), 2: ("offset", version),
                       3: ("offset", subgraphs), 4: ("offset", author),
                       6: ("offset", sidecar), 7: ("offset", parser)})
    t.b.Finish(root, file_identifier=METADATA_IDENTIFIER)
    return bytes(t.b.Output())


def _strip_metadata(model: Any) -> None:
    """Remove a ``TFLITE_METADATA`` entry and its buffer (the last one, where we put it)."""
    keep = [m for m in model.metadata or [] if m.name != METADATA_NAME]
    dropped = [m.buffer for m in model.metadata or [] if m.name == METADATA_NAME]
    model.metadata = keep or None
    for index in sorted(dropped, reverse=True):
        if index == len(model.buffers) - 1:
            model.buffers.pop()


def add_metadata(flatbuffer: bytes, meta: dict) -> tuple[bytes | None, str]:
    """``flatbuffer`` with the metadata buffer added, or ``(None, reason)``.

    The model is re-serialized with TensorFlow's generated object API (buffers aligned to
    16 bytes, identical quantization vectors shared as ``compact_tflite`` does) and compared
    field by field with the input, the metadata entry aside, before it is used."""
    try:
        from tensorflow.lite.python import schema_py_generated as schema
    except ImportError as e:
        return None, f"TensorFlow's flatbuffer schema module is missing ({e})"
    try:
        metadata = metadata_flatbuffer(meta)
        model = schema.ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0)
        if any(b.offset for b in model.buffers or []):
            return None, "the model's buffers lie outside the flatbuffer"
        if any(m.name == METADATA_NAME for m in model.metadata or []):
            return None, "the model already carries TFLITE_METADATA"
        buffer = schema.BufferT()
        buffer.data = bytearray(metadata)
        model.buffers = [*(model.buffers or []), buffer]
        entry = schema.MetadataT()
        entry.name, entry.buffer = METADATA_NAME, len(model.buffers) - 1
        model.metadata = [*(model.metadata or []), entry]
        _wrap(model)
        builder = _builder_class()(len(flatbuffer) + len(metadata) + 4096)
        builder.Finish(model.Pack(builder), file_identifier=_TFLITE_IDENTIFIER)
        out = bytes(builder.Output())
        check = schema.ModelT.InitFromPackedBuf(bytearray(out), 0)
        if read_metadata_buffer(out) != metadata:
            return None, "the metadata buffer did not read back"
        _strip_metadata(check)
        if not same_tables(check, schema.ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0)):
            return None, "the re-serialized model differs from the converter's"
    except Exception as e:  # noqa: BLE001 - metadata never fails the export
        return None, f"{type(e).__name__}: {e}"
    return out, ""


def read_metadata_buffer(flatbuffer: bytes) -> bytes | None:
    """The raw ``TFLITE_METADATA`` flatbuffer of a model, or None."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAs(bytearray(flatbuffer), 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() == METADATA_NAME:
            return model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
    return None
