"""A run exported by edgeclf: the runtime's ONNX and TFLite float32 predictions equal the
Keras checkpoint's on the same image files (issue 6 acceptance)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("ai_edge_litert")
pytest.importorskip("tensorflow")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from edgeclf.runtime import Contract, Predictor, preprocess_batch  # noqa: E402

# probabilities of a float32 artifact vs. Keras on CPU: conversion reorders float sums only
ATOL = 1e-4


CLASSES = ["amber", "jade", "navy"]
COLORS = [(230, 140, 20), (20, 170, 90), (20, 30, 140)]


@dataclass
class Exported:
    root: Path
    best: Path
    classes: list[str]
    contract: Contract
    files: list[Path]


def _tiny_model(size: int):
    """Conv + BatchNorm + ReLU6 + depthwise conv + pooling + softmax: the op families of
    edgeclf's backbones, small enough to convert in seconds. Random, non-trivial weights
    (BatchNorm statistics included) and a confident softmax: conversion errors would show."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    inp = keras.Input((size, size, 3), name="image")
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(inp)
    x = layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(x)
    bn = layers.BatchNormalization()
    x = layers.ReLU(6.0)(bn(x))
    x = layers.DepthwiseConv2D(3, padding="same")(x)
    x = layers.GlobalAveragePooling2D()(x)
    dense = layers.Dense(len(CLASSES), activation="softmax", name="probabilities")
    model = keras.Model(inp, dense(x))
    rng = np.random.default_rng(0)
    gamma, beta, mean, var = bn.get_weights()
    bn.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.2, beta.shape),
                    rng.normal(0, 0.3, mean.shape), rng.uniform(0.5, 2.0, var.shape)])
    kernel, bias = dense.get_weights()
    dense.set_weights([rng.normal(0, 8.0, kernel.shape), bias])
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from PIL import Image

    from edgeclf.data.split import Split
    from edgeclf.export import ExportConfig, export_run
    from edgeclf.run import RunPaths
    from tests.fixtures.runs import write_run_files

    tmp = tmp_path_factory.mktemp("parity")
    rng = np.random.default_rng(1)
    rel = []
    for c, color in zip(CLASSES, COLORS):
        for i in range(4):  # photos-like: noise, odd sizes, JPEG and PNG
            h, w = int(rng.integers(30, 90)), int(rng.integers(30, 90))
            arr = np.clip(np.array(color) + rng.normal(0, 40, (h, w, 3)), 0, 255)
            name = f"{c}/{i}.{'jpg' if i % 2 else 'png'}"
            (tmp / "data" / c).mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr.astype(np.uint8)).save(tmp / "data" / name)
            rel.append(name)
    contract = Contract(size=(32, 32))
    paths = RunPaths(tmp / "run")
    split = Split(root=tmp / "data", classes=CLASSES, train=rel[0::3] + rel[1::3], val=rel[2::3],
                  test=rel[2::3])
    write_run_files(paths, backbone="mobilenetv2", contract=contract, classes=CLASSES,
                    split=split)
    paths.checkpoints.mkdir(parents=True)
    _tiny_model(32).save(paths.best)
    export_run(paths.root, ExportConfig(formats=("onnx", "tflite"), quantizations=("none",)))
    return Exported(paths.root, paths.best, CLASSES, contract,
                    [tmp / "data" / r for r in rel])


@pytest.fixture(scope="module")
def keras_probs(exported):
    import keras

    model = keras.saving.load_model(exported.best, safe_mode=True, compile=False)
    batch = preprocess_batch(exported.files, exported.contract).array
    return model.predict(batch.astype(np.float32), verbose=0)


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_float32_artifact_equals_keras_checkpoint(exported, keras_probs, fmt):
    p = Predictor.from_path(exported.root, format=fmt)  # through the manifest, hash checked
    assert p.format == fmt and p.quantization == "none"
    assert p.labels == exported.classes and p.contract == exported.contract
    probs = p.predict_proba([str(f) for f in exported.files])  # from the files themselves
    assert probs.shape == keras_probs.shape
    # the trained model is far from uniform, so equal probabilities mean equal models
    assert keras_probs.max(axis=1).mean() > 1.5 / len(exported.classes)
    np.testing.assert_allclose(probs, keras_probs, atol=ATOL)
    assert (probs.argmax(axis=1) == keras_probs.argmax(axis=1)).all()
    top = p.predict(exported.files[0])[0]
    assert top.label == exported.classes[int(keras_probs[0].argmax())]


def test_int8_tflite_from_the_exporter_is_quantized_for_the_caller(exported, keras_probs):
    from edgeclf.export import ExportConfig, export_run

    export_run(exported.root, ExportConfig(formats=("tflite",), quantizations=("int8",)))
    p = Predictor.from_path(exported.root, format="tflite", quantization="int8")
    assert p.input_dtype == np.uint8 and p.quantization == "int8"
    probs = p.predict_proba(exported.files)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    # 8-bit weights and activations: close to the float model, not equal
    assert np.abs(probs - keras_probs).max() < 0.1
    assert (probs.argmax(axis=1) == keras_probs.argmax(axis=1)).mean() >= 0.75
