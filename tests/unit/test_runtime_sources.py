"""Loading a predictor from a run directory / export directory through the manifest."""

from __future__ import annotations

import numpy as np
import pytest

from edgeclf.runtime import Contract, ModelError, Predictor

from tests.fixtures.onnx_models import CLASSES, build_onnx, solid, write_manifest

pytest.importorskip("onnxruntime")


@pytest.fixture()
def run_dir(tmp_path):
    export = tmp_path / "run" / "export"
    # the float model carries no metadata of its own: labels/contract come from the manifest
    build_onnx(export / "model.onnx", labels=None)
    build_onnx(export / "model_int8.onnx", input_dtype="uint8", labels=None)
    write_manifest(export, [("model.onnx", "onnx", "none"),
                            ("model_int8.onnx", "onnx", "int8")],
                   labels=["r", "g", "b"], contract=Contract(size=(16, 20), resize="squash"))
    return tmp_path / "run"


def test_run_dir_and_export_dir(run_dir):
    for path in (run_dir, run_dir / "export"):
        p = Predictor.from_path(path)
        assert p.path == run_dir / "export" / "model.onnx"
        assert p.labels == ["r", "g", "b"] and p.contract.resize == "squash"
        assert p.predict(solid((10, 200, 10)))[0].label == "g"


def test_pick_another_artifact(run_dir):
    p = Predictor.from_path(run_dir, quantization="int8")
    assert p.path.name == "model_int8.onnx" and p.input_dtype == np.uint8
    assert p.predict(solid((10, 10, 200)))[0].label == "b"
    with pytest.raises(ModelError, match="onnx/none, onnx/int8"):
        Predictor.from_path(run_dir, format="tflite")
    with pytest.raises(ModelError, match="savedmodel"):
        Predictor.from_path(run_dir, format="savedmodel")


def test_sha256_is_checked_before_use(run_dir):
    model = run_dir / "export" / "model.onnx"
    model.write_bytes(model.read_bytes() + b"\0")
    with pytest.raises(ModelError, match="sha256"):
        Predictor.from_path(run_dir)


def test_missing_artifact_and_bad_manifest(run_dir, tmp_path):
    (run_dir / "export" / "model.onnx").unlink()
    with pytest.raises(ModelError, match="missing"):
        Predictor.from_path(run_dir)
    (run_dir / "export" / "manifest.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        Predictor.from_path(run_dir)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="manifest.json"):
        Predictor.from_path(tmp_path / "empty")


def test_manifest_labels_override_embedded_and_args_override_both(tmp_path):
    export = tmp_path / "export"
    build_onnx(export / "model.onnx")  # embedded labels: red/green/blue
    write_manifest(export, [("model.onnx", "onnx", "none")], labels=["x", "y", "z"])
    assert Predictor.from_path(export).labels == ["x", "y", "z"]
    assert Predictor.from_path(export / "model.onnx").labels == CLASSES
    assert Predictor.from_path(export, labels=["1", "2", "3"]).labels == ["1", "2", "3"]


def test_file_quantization_argument_is_refused(tmp_path):
    path = build_onnx(tmp_path / "m.onnx")
    with pytest.raises(ModelError, match="single model file"):
        Predictor.from_path(path, quantization="int8")


def test_format_sniffed_without_suffix(tmp_path):
    path = build_onnx(tmp_path / "model.bin")
    assert Predictor.from_path(path).format == "onnx"
    fake = tmp_path / "other.bin"
    fake.write_bytes(b"\x1c\0\0\0TFL3" + b"\0" * 64)  # a TFLite identifier, broken body
    with pytest.raises(ModelError, match="not a usable TFLite model"):
        Predictor.from_path(fake)


def test_manifest_without_labels_falls_back_to_embedded(tmp_path):
    export = tmp_path / "export"
    build_onnx(export / "model.onnx")
    write_manifest(export, [("model.onnx", "onnx", "none")], labels=[])
    p = Predictor.from_path(export)
    assert p.labels == CLASSES and repr(p).startswith("Predictor(")
    p.close()
    assert p.format == "onnx" and "closed" not in repr(p)
