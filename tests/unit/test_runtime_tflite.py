"""The TFLite backend on models converted here from a tiny Keras model (float32 with a
dynamic batch, and full-integer with uint8 input/output), with edgeclf metadata appended."""

from __future__ import annotations

import os

import numpy as np
import pytest

from edgeclf.runtime import Contract, DeviceError, ModelError, Predictor, preprocess_batch
from edgeclf.runtime.metadata import build_metadata, embed_tflite

from tests.fixtures.onnx_models import solid

pytest.importorskip("ai_edge_litert")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tf = pytest.importorskip("tensorflow")

CLASSES = ["red", "green", "blue"]
CONTRACT = Contract(size=(24, 24))
COLORS = [(240, 20, 20), (20, 240, 20), (20, 20, 240)]


def _keras_model():
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((24, 24, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inp, out)
    model.layers[-1].set_weights([np.eye(3, dtype=np.float32) * 3, np.zeros(3, np.float32)])
    return model


def _images(n: int = 12) -> list[np.ndarray]:
    return [solid(COLORS[i % 3], (30 + i, 24 + 2 * i)) for i in range(n)]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("tflite")
    model = _keras_model()
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    (d / "float.tflite").write_bytes(conv.convert())

    def representative():
        for img in preprocess_batch(_images(), CONTRACT).array:
            yield [img[None].astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.uint8
    conv.inference_output_type = tf.uint8
    (d / "int8.tflite").write_bytes(conv.convert())
    meta = build_metadata(CLASSES, CONTRACT)
    for name in ("float.tflite", "int8.tflite"):
        embed_tflite(d / name, meta)
    return model, d


def test_float_tflite_equals_keras(models):
    model, d = models
    p = Predictor.from_path(d / "float.tflite")
    assert p.labels == CLASSES and p.contract == CONTRACT and p.format == "tflite"
    assert p.fixed_batch is None and p.input_dtype == np.float32
    images = _images()
    batch = preprocess_batch(images, CONTRACT).array
    want = model.predict(batch.astype(np.float32), verbose=0)
    np.testing.assert_allclose(p.predict_proba(images), want, rtol=1e-5, atol=1e-6)
    # different batch sizes in a row resize the interpreter each time
    np.testing.assert_allclose(p.run(batch[:5]), want[:5], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(p.run(batch[:1]), want[:1], rtol=1e-5, atol=1e-6)


def test_int8_tflite_quantizes_for_the_caller(models):
    model, d = models
    p = Predictor.from_path(d / "int8.tflite")
    assert p.input_dtype == np.uint8 and p.quantization == "int8"
    images = _images()
    batch = preprocess_batch(images, CONTRACT).array
    want = model.predict(batch.astype(np.float32), verbose=0)
    got = p.predict_proba(images)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-5)
    assert (got.argmax(axis=1) == want.argmax(axis=1)).all()
    assert np.abs(got - want).max() < 0.05
    assert [x.label for x in p.predict(images[:3])] == CLASSES


def test_tflite_devices_and_bad_files(models, tmp_path):
    _, d = models
    with pytest.raises(DeviceError, match="CPU only"):
        Predictor.from_path(d / "float.tflite", device="gpu")
    assert Predictor.from_path(d / "float.tflite", device="auto").provider == "litert-cpu"
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\0" * 100)
    with pytest.raises(ModelError, match="not a usable TFLite model"):
        Predictor.from_path(bad)
    with pytest.raises(ModelError, match="not found"):
        Predictor.from_path(tmp_path / "missing.tflite")


def test_tf_lite_fallback_and_install_hint(models, monkeypatch):
    import importlib.util
    import sys

    from edgeclf.runtime import DependencyError

    _, d = models
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # LiteRT "absent"
    p = Predictor.from_path(d / "float.tflite")
    assert p.provider == "tf.lite-cpu" and p.predict(_images(1))[0].label == "red"
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorflow" else real_find_spec(name, *a))
    with pytest.raises(DependencyError, match="pip install ai-edge-litert"):
        Predictor.from_path(d / "float.tflite")
