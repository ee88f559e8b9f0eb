"""evaluate(): the Keras checkpoint and every artifact format give the same answers; foreign
model files work with a labels file and a data folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeclf.errors import ConfigError, DataError, ModelError
from edgeclf.evaluate import default_out_dir, evaluate, write_eval
from edgeclf.fsutil import read_json
from tests.fixtures.parity import make_exported_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_exported_run(tmp_path_factory.mktemp("eval"))


@pytest.fixture(scope="module")
def keras_result(run):
    return evaluate(run.root)


def test_checkpoint_and_every_artifact_agree(run, keras_result):
    assert keras_result.format == "keras" and keras_result.source == "split:test"
    n = len(json.loads(run.paths.split.read_text())["test"])
    assert keras_result.n_images == n
    for name, fmt in (("model.onnx", "onnx"), ("model.tflite", "tflite"),
                      ("saved_model", "savedmodel")):
        res = evaluate(run.paths.export_dir / name)
        assert res.format == fmt and res.files == keras_result.files
        assert res.accuracy == keras_result.accuracy
        assert res.metrics.top5 == keras_result.metrics.top5
        assert np.array_equal(res.metrics.confusion, keras_result.metrics.confusion)
        np.testing.assert_allclose(res.probs, keras_result.probs, atol=1e-5)


def test_checkpoint_file_inside_the_run(run, keras_result):
    res = evaluate(run.paths.last)          # labels and contract come from the run
    assert res.format == "keras" and res.accuracy == keras_result.accuracy
    assert res.metrics.labels == run.classes


def test_per_class_metrics_match_the_predictions(keras_result):
    m = keras_result.metrics
    pred = keras_result.probs.argmax(1)
    y = keras_result.y_true
    assert m.accuracy == pytest.approx(float((pred == y).mean()))
    for i, c in enumerate(m.per_class):
        assert c.support == int((y == i).sum())
        if (pred == i).any():
            assert c.precision == pytest.approx(float((y[pred == i] == i).mean()))


def test_eval_json_and_confusion_png(run, keras_result, tmp_path):
    js, png = write_eval(keras_result, tmp_path / "out")
    data = read_json(js)
    assert data["accuracy"] == keras_result.accuracy and data["n_images"] > 0
    assert [c["label"] for c in data["per_class"]] == run.classes
    assert len(data["confusion_matrix"]) == len(run.classes)
    wrong = data["misclassified"]
    assert len(wrong) == int((keras_result.probs.argmax(1) != keras_result.y_true).sum())
    assert all(w["true"] != w["predicted"] for w in wrong)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert default_out_dir(run.root) == run.root
    assert default_out_dir(run.paths.export_dir / "model.onnx") == \
        run.root / "eval" / "model.onnx"


def test_foreign_onnx_with_labels_file_and_data_folder(run, tmp_path):
    import onnx

    proto = onnx.load(str(run.paths.export_dir / "model.onnx"))
    del proto.metadata_props[:]                        # a model edgeclf did not make
    foreign = tmp_path / "foreign.onnx"
    onnx.save(proto, str(foreign))
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(run.classes) + "\n")
    with pytest.raises(ModelError, match="labels"):
        evaluate(foreign, data=run.data_dir)
    res = evaluate(foreign, data=run.data_dir, labels=labels)
    assert res.metrics.labels == run.classes and res.source == str(run.data_dir)
    n = sum(1 for c in run.classes for _ in (run.data_dir / c).iterdir())
    assert res.n_images == n
    # the same folder through the run's own ONNX (metadata: the run's contract) agrees
    # wherever the two contracts preprocess alike; here both are 32x32 from 48x48 squares
    own = evaluate(run.paths.export_dir / "model.onnx", data=run.data_dir)
    assert own.accuracy == res.accuracy
    with pytest.raises(ConfigError, match="--data"):
        evaluate(foreign, labels=labels)
    short = tmp_path / "short.txt"
    short.write_text("\n".join(run.classes[:-1]))
    with pytest.raises(ModelError, match="labels"):
        evaluate(foreign, data=run.data_dir, labels=short)


def test_data_folder_with_unknown_class_is_refused(run, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(run.data_dir / run.classes[0], data / "zebra")
    with pytest.raises(DataError, match="zebra"):
        evaluate(run.paths.export_dir / "model.onnx", data=data)


def test_not_a_model(tmp_path):
    (tmp_path / "model.txt").write_text("hello")
    with pytest.raises(ModelError, match="not a model"):
        evaluate(tmp_path / "model.txt", data=tmp_path)
    with pytest.raises(ModelError, match="does not exist"):
        evaluate(tmp_path / "gone.onnx", data=tmp_path)


def test_checkpoint_with_a_lambda_layer_is_refused_without_running_it(run, tmp_path):
    import shutil

    import keras

    mine = tmp_path / "run"
    shutil.copytree(run.root, mine)
    inputs = keras.Input((32, 32, 3), name="image")
    x = keras.layers.Lambda(lambda t: t / 255.0)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(len(run.classes), activation="softmax")(x)
    keras.Model(inputs, outputs).save(mine / "checkpoints" / "best.keras")
    with pytest.raises(ModelError, match="Lambda"):
        evaluate(mine)
