"""Lossless compaction of a TFLite flatbuffer: identical quantization vectors stored once.

Per-channel quantization stores, for every weight and bias tensor, a float32 ``scale``
vector and an int64 ``zero_point`` vector as long as the channel count (the runtime requires
as many zero points as scales). The zero points are all 0, so every tensor with C channels
carries the same C zeros: on MobileNetV2 (flowers) 273,552 bytes of a 2,742,362-byte int8
model. FlatBuffers lets several tables reference one vector (the builder writes back to
front, so a vector written earlier can be referenced by any table written later, as
``CreateSharedString`` does for strings).

``compact_tflite`` re-serializes the model with TensorFlow's generated object API and writes
each distinct (dtype, bytes) vector of a quantization table (min, max, scale, zero_point)
once. Nothing else changes: tensor names, operators, signatures and buffers are written as
they were read. Buffer data (the weights) is never shared, and starts on a 16-byte boundary
as the schema's ``force_align: 16`` asks (the converter's own Python serializer aligns it to
4 bytes only). The result is compared field by field with the input before it is used.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: quantizations whose TFLite models carry per-channel scale / zero-point vectors
COMPACTED = ("dynamic", "int8")
#: alignment of Buffer.data (``force_align: 16`` in the TFLite schema)
BUFFER_ALIGNMENT = 16
_FILE_IDENTIFIER = b"TFL3"
#: numpy types of the quantization vectors, for tables built from lists
_QUANT_DTYPES = {"min": np.float32, "max": np.float32, "scale": np.float32,
                 "zeroPoint": np.int64}


def _builder_class() -> type:
    import flatbuffers

    class SharingBuilder(flatbuffers.Builder):
        """A Builder that, while ``sharing``, returns the offset of an identical numpy
        vector written before, and aligns vectors to at least ``vector_alignment``."""

        def __init__(self, size: int):
            super().__init__(size)
            self.sharing = False
            self.vector_alignment = 1
            self.shared: dict[tuple[str, bytes], int] = {}
            self.reused = 0

        def StartVector(self, elemSize, numElems, alignment):  # noqa: N802 - flatbuffers API
            return super().StartVector(elemSize, numElems,
                                       max(alignment, self.vector_alignment))

        def CreateNumpyVector(self, x):  # noqa: N802 - flatbuffers API
            if not self.sharing:
                return super().CreateNumpyVector(x)
            key = (x.dtype.str, x.tobytes())
            if key in self.shared:
                self.reused += 1
                return self.shared[key]
            offset = self.shared[key] = super().CreateNumpyVector(x)
            return offset

    return SharingBuilder


class _Packed:
    """Packs ``table`` (a generated ``...T`` object) with the builder switched into a mode:
    ``sharing`` for quantization tables, ``vector_alignment`` for buffers."""

    def __init__(self, table: Any, **mode: Any):
        self.table, self.mode = table, mode

    def Pack(self, builder):  # noqa: N802 - called by the generated Pack methods
        saved = {k: getattr(builder, k) for k in self.mode}
        for k, v in self.mode.items():
            setattr(builder, k, v)
        try:
            return self.table.Pack(builder)
        finally:
            for k, v in saved.items():
                setattr(builder, k, v)


def _wrap(model: Any) -> None:
    """Route every quantization table and buffer of ``model`` through ``_Packed``."""
    for graph in model.subgraphs or []:
        for tensor in graph.tensors or []:
            quant = tensor.quantization
            if quant is None:
                continue
            for name, dtype in _QUANT_DTYPES.items():   # lists would bypass the sharing
                value = getattr(quant, name)
                if value is not None and not isinstance(value, np.ndarray):
                    setattr(quant, name, np.asarray(value, dtype))
            tensor.quantization = _Packed(quant, sharing=True)
    model.buffers = [_Packed(b, vector_alignment=BUFFER_ALIGNMENT)
                     for b in model.buffers or []]


def same_tables(a: Any, b: Any) -> bool:
    """Whether two object-API trees hold the same values (arrays compared by dtype and
    bytes, so -0.0 and 0.0 differ and NaNs compare by bit pattern)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, (list, tuple)):
        return (isinstance(b, (list, tuple)) and len(a) == len(b)
                and all(same_tables(x, y) for x, y in zip(a, b)))
    if hasattr(a, "__dict__"):
        return (type(a) is type(b) and vars(a).keys() == vars(b).keys()
                and all(same_tables(v, getattr(b, k)) for k, v in vars(a).items()))
    return a == b or (a != a and b != b)


def compact_tflite(flatbuffer: bytes) -> tuple[bytes, dict | None]:
    """``flatbuffer`` with each distinct quantization vector stored once, and a record
    for the manifest. Where TensorFlow's schema module is missing, the model holds data
    outside the flatbuffer, or the result would not be smaller or not equal field by
    field, the input comes back unchanged, with ``None`` and a logged reason."""
    try:
        from tensorflow.lite.python import schema_py_generated as schema
    except ImportError as e:
        log.warning("TFLite model not compacted: TensorFlow's flatbuffer schema module is "
                    "missing (%s)", e)
        return flatbuffer, None
    model = schema.ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0)
    if any(b.offset for b in model.buffers or []):
        log.info("TFLite model not compacted: its buffers lie outside the flatbuffer")
        return flatbuffer, None
    _wrap(model)
    builder = _builder_class()(len(flatbuffer) + 1024)
    try:
        builder.Finish(model.Pack(builder), file_identifier=_FILE_IDENTIFIER)
    except Exception as e:  # noqa: BLE001 - an optional size saving never fails the export
        log.warning("TFLite model not compacted: re-serializing it failed (%s: %s)",
                    type(e).__name__, e)
        return flatbuffer, None
    compacted = bytes(builder.Output())
    if len(compacted) >= len(flatbuffer):
        log.info("TFLite model not compacted: nothing to share (%d bytes)", len(flatbuffer))
        return flatbuffer, None
    if not same_tables(schema.ModelT.InitFromPackedBuf(bytearray(compacted), 0),
                       schema.ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0)):
        log.warning("TFLite model not compacted: the re-serialized model differs from the "
                    "converter's (a TensorFlow schema this code does not know?)")
        return flatbuffer, None
    record = {"bytes_before": len(flatbuffer), "bytes_after": len(compacted),
              "vectors_shared": builder.reused}
    log.info("TFLite model compacted: %d -> %d bytes (%d quantization vectors shared)",
             len(flatbuffer), len(compacted), builder.reused)
    return compacted, record
