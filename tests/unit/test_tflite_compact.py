"""TFLite compaction: identical quantization vectors are stored once, losslessly (same
tables field by field, bit-identical outputs in both interpreters), buffer data stays
16-byte aligned, and the export records what it saved."""

from __future__ import annotations

import json
import sys
import warnings
from collections import defaultdict

import numpy as np
import pytest

from edgeclf.export.tflite_compact import BUFFER_ALIGNMENT, compact_tflite, same_tables

pytest.importorskip("tensorflow")

#: vtable slots of QuantizationParameters.zero_point and Buffer.data in the TFLite schema
_ZERO_POINT_SLOT, _DATA_SLOT = 10, 4


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A ``weights=None`` MobileNetV2 (alpha 0.35, 32 px) as a SavedModel, and images."""
    from tests.fixtures.runs import build_model

    model = build_model("mobilenetv2", 32, 5)
    path = tmp_path_factory.mktemp("compact") / "saved_model"
    model.export(str(path), format="tf_saved_model", verbose=False)
    images = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3)).astype(np.float32)
    return path, images


def _quantize(saved_model, quantization: str, io: str = "uint8") -> bytes:
    import tensorflow as tf

    from edgeclf.export.tflite_int8 import quantize_int8

    path, images = saved_model
    converter = tf.lite.TFLiteConverter.from_saved_model(str(path))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "dynamic":
        return converter.convert()
    io_type = {"uint8": tf.uint8, "int8": tf.int8}[io]
    converter.representative_dataset = lambda: ([images[i:i + 1]] for i in range(8))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = io_type
    return quantize_int8(converter, images[:8], io_type, bias_correction=False)[0]


@pytest.fixture(scope="module", params=["uint8", "int8"])
def int8_model(request, saved_model) -> tuple[str, bytes]:
    return request.param, _quantize(saved_model, "int8", request.param)


def _zero_point_starts(flatbuffer: bytes) -> dict[bytes, set[int]]:
    """Start of each tensor's zero_point vector in the file, by vector contents (the
    per-channel ones are C zeros; activations have one zero point each)."""
    from tensorflow.lite.python import schema_py_generated as schema

    graph = schema.Model.GetRootAs(bytearray(flatbuffer), 0).Subgraphs(0)
    starts: dict[bytes, set[int]] = defaultdict(set)
    for i in range(graph.TensorsLength()):
        quant = graph.Tensors(i).Quantization()
        if quant is not None and quant.ZeroPointLength():
            tab = quant._tab
            key = quant.ZeroPointAsNumpy().tobytes()
            starts[key].add(tab.Vector(tab.Offset(_ZERO_POINT_SLOT)))
    return starts


def _tensors(flatbuffer: bytes, inputs: np.ndarray, interpreter) -> list[np.ndarray]:
    """Every tensor (the output and all intermediates, no buffer reuse) for each input:
    a random MobileNetV2's softmax is near uniform, its activations are not."""
    interp = interpreter(model_content=flatbuffer, experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    index = interp.get_input_details()[0]["index"]
    tensors = [d["index"] for d in interp.get_tensor_details()]
    results = []
    for x in inputs:
        interp.set_tensor(index, x[None])
        interp.invoke()
        results.extend(interp.get_tensor(i).copy() for i in tensors)
    return results


def _interpreters() -> list:
    import tensorflow as tf

    found = [tf.lite.Interpreter]
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        return found
    return [Interpreter, *found]


def test_int8_equal_zero_point_vectors_share_one_offset(int8_model):
    _, flatbuffer = int8_model
    compacted, record = compact_tflite(flatbuffer)
    assert record == {"bytes_before": len(flatbuffer), "bytes_after": len(compacted),
                      "vectors_shared": record["vectors_shared"]}
    assert len(compacted) < 0.95 * len(flatbuffer)
    before, after = _zero_point_starts(flatbuffer), _zero_point_starts(compacted)
    assert before.keys() == after.keys()
    assert any(len(s) > 1 for s in before.values())        # the converter repeats them
    assert all(len(s) == 1 for s in after.values()), after
    channels = {len(k) // 8 for k, s in before.items() if len(s) > 1 and len(k) > 8}
    assert len(channels) >= 5, channels                # per-channel ones among them
    assert record["vectors_shared"] >= sum(len(s) - 1 for s in before.values())


def test_compaction_is_lossless(int8_model):
    from tensorflow.lite.python import schema_py_generated as schema

    io, flatbuffer = int8_model
    compacted, _ = compact_tflite(flatbuffer)
    assert same_tables(schema.ModelT.InitFromPackedBuf(bytearray(compacted), 0),
                       schema.ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0))
    dtype = np.dtype(io)
    rng = np.random.default_rng(1)
    inputs = rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max + 1, (6, 32, 32, 3),
                          dtype=dtype)
    for interpreter in _interpreters():
        with warnings.catch_warnings():      # preserving all tensors is "for debugging"
            warnings.simplefilter("ignore", UserWarning)
            want = _tensors(flatbuffer, inputs, interpreter)
            got = _tensors(compacted, inputs, interpreter)
        assert len(got) == len(want) > 100
        assert all(g.dtype == w.dtype and np.array_equal(g, w) for g, w in zip(got, want))
        assert want[0].dtype == dtype
        n = len(want) // len(inputs)                                  # the inputs matter
        assert sum(not np.array_equal(a, b) for a, b in zip(want[:n], want[n:2 * n])) > 20


def test_buffer_data_is_16_byte_aligned(int8_model):
    from tensorflow.lite.python import schema_py_generated as schema

    compacted, _ = compact_tflite(int8_model[1])
    model = schema.Model.GetRootAs(bytearray(compacted), 0)
    starts = [model.Buffers(i)._tab.Vector(model.Buffers(i)._tab.Offset(_DATA_SLOT))
              for i in range(model.BuffersLength()) if model.Buffers(i).DataLength()]
    assert len(starts) > 10 and all(s % BUFFER_ALIGNMENT == 0 for s in starts)


def test_dynamic_range_model_is_compacted_too(saved_model):
    flatbuffer = _quantize(saved_model, "dynamic")
    compacted, record = compact_tflite(flatbuffer)
    assert record is not None and len(compacted) < len(flatbuffer)
    assert all(len(s) == 1 for s in _zero_point_starts(compacted).values())


def test_float_model_with_nothing_to_share_comes_back_unchanged(saved_model, caplog):
    import tensorflow as tf

    flatbuffer = tf.lite.TFLiteConverter.from_saved_model(str(saved_model[0])).convert()
    with caplog.at_level("INFO"):
        assert compact_tflite(flatbuffer) == (flatbuffer, None)
    assert "nothing to share" in caplog.text


def test_without_the_schema_module_the_model_is_kept_with_a_warning(monkeypatch, caplog):
    from tensorflow.lite import python as tflite_python

    monkeypatch.setitem(sys.modules, "tensorflow.lite.python.schema_py_generated", None)
    monkeypatch.delattr(tflite_python, "schema_py_generated", raising=False)
    assert compact_tflite(b"not even a model") == (b"not even a model", None)
    assert "schema module is missing" in caplog.text


def test_export_records_the_compaction(tmp_path):
    from edgeclf.export import ExportConfig, export_run
    from edgeclf.runtime.manifest import load_manifest
    from tests.fixtures.runs import make_trained_run

    run = make_trained_run(tmp_path, backbone="tiny", image_size=32, per_class=8, epochs=2)
    export_run(run.root, ExportConfig(formats=("tflite",), quantizations=("none", "int8")))
    manifest = load_manifest(run.paths.export_dir)
    entries = {a["quantization"]: a for a in manifest["artifacts"]}
    record = entries["int8"]["converter"]["compacted"]
    assert record["bytes_after"] < record["bytes_before"]
    assert entries["int8"]["bytes"] > record["bytes_after"]          # + the metadata zip
    assert "compacted" not in entries["none"]["converter"]
    artifact = (run.paths.export_dir / entries["int8"]["file"]).read_bytes()
    assert all(len(s) == 1 for s in _zero_point_starts(artifact).values())
    json.dumps(manifest)                                         # plain JSON types only
