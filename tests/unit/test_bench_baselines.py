"""The baselines of `edgeclf bench` on a tiny Keras model: Keras predict and direct call on
the checkpoint, the SavedModel through TensorFlow, TFLite through the predictor and through a
bare LiteRT interpreter (XNNPACK). Structure only; no timing is asserted."""

from __future__ import annotations

import json
import os

import pytest

from edgeclf.bench import BenchConfig, run_bench
from edgeclf.runtime.contract import Contract
from edgeclf.runtime.manifest import sha256_file
from edgeclf.runtime.metadata import build_metadata, embed_tflite, write_savedmodel_assets

from tests.fixtures.bench import LABELS, SIZE

pytest.importorskip("tensorflow")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def _size(path):
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() \
        else path.stat().st_size


@pytest.fixture(scope="module")
def keras_run(tmp_path_factory):
    import tensorflow as tf

    try:   # what the in-process bench asks; impossible once another test started TensorFlow
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        in_process = True
    except RuntimeError:
        in_process = False
    import keras

    run = tmp_path_factory.mktemp("baselines") / "run"
    (run / "checkpoints").mkdir(parents=True)
    export = run / "export"
    contract = Contract(size=(SIZE, SIZE))
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(len(LABELS), activation="softmax")(x))
    model.save(run / "checkpoints" / "best.keras")
    model.export(str(export / "saved_model"), format="tf_saved_model", verbose=False)
    meta = build_metadata(LABELS, contract, version="test")
    write_savedmodel_assets(export / "saved_model", meta)
    tfl = tf.lite.TFLiteConverter.from_saved_model(str(export / "saved_model")).convert()
    (export / "model.tflite").write_bytes(tfl)
    embed_tflite(export / "model.tflite", meta)
    artifacts = [{"file": f, "format": fmt, "quantization": "none",
                  "bytes": _size(export / f), "sha256": sha256_file(export / f)}
                 for f, fmt in (("saved_model", "savedmodel"), ("model.tflite", "tflite"))]
    (export / "manifest.json").write_text(json.dumps({"labels": LABELS,
                                                      "preprocessing": contract.to_dict(),
                                                      "artifacts": artifacts}))
    (run / "run.json").write_text(json.dumps({"preprocessing": contract.to_dict()}))
    (run / "labels.txt").write_text("\n".join(LABELS) + "\n")
    return run, in_process


def test_baselines_run_side_by_side(keras_run):
    run, in_process = keras_run   # TensorFlow already started here: fresh processes instead
    cfg = BenchConfig(batch_sizes=(1, 4), threads=(1,), runs=3, warmup=1, isolate=not in_process,
                      exhaustive=True)         # the Keras baselines run only on request
    rows = run_bench(run, cfg).results
    by = {(r["artifact"], r["batch_size"]): r for r in rows}
    assert all(r["status"] == "ok" for r in rows), [r["error"] for r in rows if r["error"]]
    assert {a for a, _ in by} == {"saved_model", "model.tflite", "tflite-xnnpack",
                                  "keras-predict", "keras-call"}
    assert by[("saved_model", 1)]["provider"] == "tensorflow-cpu"
    assert by[("tflite-xnnpack", 4)]["provider"] == "litert-xnnpack-cpu"
    assert by[("keras-call", 1)]["provider"].startswith("keras-tensorflow")
    assert by[("model.tflite", 4)]["preprocess_ms"] is not None      # through the predictor
    assert by[("keras-predict", 4)]["preprocess_ms"] is None           # baselines: inference
    for r in rows:
        assert r["speedup_vs"] == "keras-call" and r["speedup"] > 0
    assert by[("keras-call", 4)]["speedup"] == 1.0


def test_bench_runs_the_savedmodel_as_eval_does(keras_run, monkeypatch):
    """One serving function: the bench baseline's probabilities are eval's and parity's."""
    import numpy as np
    import tensorflow as tf

    from edgeclf.bench import Job, models
    from edgeclf.inference import open_model

    run, _ = keras_run
    # thread settings change timings, not outputs; TensorFlow may already run here with others
    monkeypatch.setattr(models, "_tensorflow", lambda threads: tf)
    saved = run / "export" / "saved_model"
    job = Job(artifact="saved_model", runner="savedmodel", path=str(saved), format="savedmodel",
              quantization="none", device="cpu", threads=1, batch_sizes=(3,), warmup=0, runs=1,
              seconds=None)
    opened = models.RUNNERS["savedmodel"](job)
    x = np.random.default_rng(0).integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)
    assert opened.size == (SIZE, SIZE)
    np.testing.assert_array_equal(opened.infer(x), open_model(saved).predict(x))


def test_the_probabilities_output_is_read_when_there_are_several(tmp_path):
    import numpy as np
    import tensorflow as tf

    from edgeclf.inference.savedmodel import load_serving_function

    class TwoOutputs(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec((None, 4, 4, 3), tf.float32, "image")])
        def serve(self, image):
            logits = tf.reduce_mean(image, axis=[1, 2])
            return {"logits": logits, "probabilities": tf.nn.softmax(logits)}

    module = TwoOutputs()
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": module.serve})
    serving = load_serving_function(tmp_path / "sm")
    x = np.random.default_rng(1).integers(0, 256, (2, 4, 4, 3), dtype=np.uint8)
    assert serving.output == "probabilities" and serving.input_size == (4, 4)
    np.testing.assert_allclose(serving.run(x).sum(axis=1), 1.0, rtol=1e-6)
