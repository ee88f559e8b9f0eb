"""Standard TFLite Metadata in every exported ``.tflite`` (issue 20): read back with the
schema's generated code, loaded in MediaPipe Tasks' ImageClassifier, and still read by
edgeclf's runtime (new layout and the layout of earlier artifacts)."""

from __future__ import annotations

import io
import json
import logging
import shutil
import zipfile

import numpy as np
import pytest

from edgeclf.export import ExportConfig, export_run
from edgeclf.runtime import Predictor
from edgeclf.runtime.manifest import load_manifest, sha256_file, verify_artifact
from edgeclf.runtime.preprocess import preprocess_batch

pytest.importorskip("ai_edge_litert")
pytest.importorskip("tensorflow")

QUANTS = ("none", "dynamic", "float16", "int8")
FILES = {"none": "model.tflite", "dynamic": "model.dynamic.tflite",
         "float16": "model.float16.tflite", "int8": "model.int8.tflite"}
#: MediaPipe and edgeclf run the same interpreter on the same pixels: scores agree to float
#: rounding (float models) or to one output quantization step (int8, scale 1/256)
SCORE_TOLERANCE = {"none": 1e-5, "dynamic": 1e-5, "float16": 1e-5, "int8": 1 / 256 + 1e-6}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from tests.fixtures.runs import make_trained_run

    run = make_trained_run(tmp_path_factory.mktemp("meta"), backbone="tiny", image_size=32,
                           per_class=6, epochs=6)
    result = export_run(run.root, ExportConfig(formats=("tflite",), quantizations=QUANTS,
                                               calibration_size=12))
    assert result.ok, [a.message for a in result.artifacts]
    return run


def _schema():
    return pytest.importorskip(
        "mediapipe.tasks.metadata.metadata_schema_py_generated",
        reason="mediapipe is not installed (pip install mediapipe): the metadata is read back "
               "with its generated schema code")


def _read_metadata(path):
    from edgeclf.export.tflite_metadata import read_metadata_buffer

    buf = read_metadata_buffer(path.read_bytes())
    assert buf is not None and buf[4:8] == b"M001", "no TFLITE_METADATA buffer"
    schema = _schema()
    return schema, schema.ModelMetadataT.InitFromObj(
        schema.ModelMetadata.GetRootAsModelMetadata(buf, 0))


@pytest.mark.parametrize("quant", QUANTS)
def test_zip_holds_labels_and_contract_once(exported, quant):
    path = exported.paths.export_dir / FILES[quant]
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["edgeclf.json", "labels.txt"]   # one zip, not two
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
        assert zf.read("labels.txt").decode().split() == exported.classes
        meta = json.loads(zf.read("edgeclf.json"))
    assert meta["labels"] == exported.classes
    assert meta["preprocessing"] == exported.contract.to_dict()
    entry = next(a for a in load_manifest(exported.paths.export_dir)["artifacts"]
                 if a["file"] == FILES[quant])
    assert entry["sha256"] == sha256_file(path)
    assert entry["converter"]["tflite_metadata"] == {"written": True}
    if quant == "int8":           # compaction still applies under the metadata
        assert entry["converter"]["compacted"]["bytes_after"] < \
            entry["converter"]["compacted"]["bytes_before"]


@pytest.mark.parametrize("quant", QUANTS)
def test_standard_metadata_reads_back(exported, quant):
    schema, meta = _read_metadata(exported.paths.export_dir / FILES[quant])
    assert meta.name == b"edgeclf image classifier"
    assert str(len(exported.classes)).encode() + b" classes" in meta.description
    assert meta.minParserVersion == b"1.0.0"
    assert [f.name for f in meta.associatedFiles] == [b"edgeclf.json"]
    (graph,) = meta.subgraphMetadata
    (inp,), (out,) = graph.inputTensorMetadata, graph.outputTensorMetadata
    assert inp.content.contentPropertiesType == schema.ContentProperties.ImageProperties
    assert inp.content.contentProperties.colorSpace == schema.ColorSpaceType.RGB
    (unit,) = inp.processUnits
    assert unit.optionsType == schema.ProcessUnitOptions.NormalizationOptions
    assert list(unit.options.mean) == [0.0] and list(unit.options.std) == [1.0]
    assert list(inp.stats.min) == [0.0] and list(inp.stats.max) == [255.0]
    assert out.content.contentPropertiesType == schema.ContentProperties.FeatureProperties
    (labels,) = out.associatedFiles
    assert labels.name == b"labels.txt"
    assert labels.type == schema.AssociatedFileType.TENSOR_AXIS_LABELS


def _old_layout(path, dst):
    """The artifact as edgeclf wrote it before standard metadata: the flatbuffer, then a zip
    written on its own (offsets from the zip's start, deflated)."""
    data = path.read_bytes()
    with zipfile.ZipFile(path) as zf:
        start = min(i.header_offset for i in zf.infolist())
        meta = json.loads(zf.read("edgeclf.json"))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("edgeclf.json", json.dumps(meta, indent=2))
        zf.writestr("labels.txt", "\n".join(meta["labels"]) + "\n")
    dst.write_bytes(data[:start] + buf.getvalue())
    return dst


@pytest.mark.parametrize("quant", ["none", "int8"])
def test_runtime_reads_new_and_old_layouts(exported, quant, tmp_path):
    new = exported.paths.export_dir / FILES[quant]
    old = _old_layout(new, tmp_path / "old.tflite")
    probs = []
    for path in (new, old):
        predictor = Predictor.from_path(path)
        assert predictor.labels == exported.classes
        assert predictor.contract == exported.contract
        probs.append(predictor.predict_proba(exported.files[:4]))
    np.testing.assert_array_equal(probs[0], probs[1])


def test_add_metadata_changes_nothing_but_the_metadata(exported):
    import tensorflow as tf

    from edgeclf.export.tflite import interpreter_class
    from edgeclf.export.tflite_metadata import add_metadata, read_metadata_buffer
    from edgeclf.export.utils import load_checkpoint

    model = load_checkpoint(exported.paths.best)
    plain = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    meta = json.loads(zipfile.ZipFile(exported.paths.export_dir / "model.tflite")
                      .read("edgeclf.json"))
    out, reason = add_metadata(plain, meta)
    assert out is not None, reason
    assert read_metadata_buffer(plain) is None and read_metadata_buffer(out) is not None
    x = exported.images[:3].astype(np.float32)
    results = []
    for flatbuffer in (plain, out):
        interp = interpreter_class()(model_content=flatbuffer)
        interp.resize_tensor_input(0, x.shape)
        interp.allocate_tensors()
        interp.set_tensor(interp.get_input_details()[0]["index"], x)
        interp.invoke()
        results.append(interp.get_tensor(interp.get_output_details()[0]["index"]))
    np.testing.assert_array_equal(results[0], results[1])
    again, reason = add_metadata(out, meta)
    assert again is None and "already" in reason


def test_metadata_that_fails_leaves_the_plain_artifact(exported, tmp_path, monkeypatch,
                                                       caplog):
    from edgeclf.export import tflite_metadata
    from edgeclf.export.tflite_metadata import read_metadata_buffer

    run = tmp_path / "run"
    shutil.copytree(exported.root, run)

    def broken(meta):
        raise RuntimeError("schema writer broke")

    monkeypatch.setattr(tflite_metadata, "metadata_flatbuffer", broken)
    with caplog.at_level(logging.WARNING):
        result = export_run(run, ExportConfig(formats=("tflite",), quantizations=("none",)))
    assert result.ok
    entry = next(a for a in load_manifest(run / "export")["artifacts"]
                 if a["file"] == "model.tflite")
    path = verify_artifact(run / "export", entry)
    assert entry["converter"]["tflite_metadata"] == {
        "written": False, "reason": "RuntimeError: schema writer broke"}
    assert "standard TFLite metadata not written" in caplog.text
    assert read_metadata_buffer(path.read_bytes()) is None
    assert not [p for p in (run / "export").iterdir() if p.name.startswith(".")]
    assert Predictor.from_path(path).labels == exported.classes


# -- MediaPipe Tasks (a client nobody on this project wrote) ----------------------------

def _classifier(path):
    pytest.importorskip("mediapipe", reason="mediapipe is not installed (pip install "
                        "mediapipe, or the dev extra)")
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.ImageClassifierOptions(
        base_options=BaseOptions(model_asset_path=str(path)), max_results=-1)
    return vision.ImageClassifier.create_from_options(options)


def _mp_image(array: np.ndarray):
    import mediapipe as mp

    return mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(array))


@pytest.mark.parametrize("quant", QUANTS)
def test_mediapipe_image_classifier_reads_labels_and_agrees(exported, quant):
    path = exported.paths.export_dir / FILES[quant]
    # the contract's centre crop and resize, done before MediaPipe: it then resizes nothing
    inputs = preprocess_batch(exported.files, exported.contract).array
    expected = Predictor.from_path(path).predict_proba(exported.files)
    with _classifier(path) as classifier:
        for x, probs in zip(inputs, expected):
            (head,) = classifier.classify(_mp_image(x)).classifications
            got = {c.category_name: c.score for c in head.categories}
            assert sorted(got) == sorted(exported.classes)
            assert head.categories[0].category_name == exported.classes[int(probs.argmax())]
            diff = max(abs(got[c] - float(p)) for c, p in zip(exported.classes, probs))
            assert diff <= SCORE_TOLERANCE[quant], (quant, diff)


def test_mediapipe_region_of_interest_is_the_contract_crop(exported):
    """What the README tells a MediaPipe user: pass the centre crop as the region of
    interest. MediaPipe then sees the framing edgeclf sees (same result as cropping first)."""
    pytest.importorskip("mediapipe", reason="mediapipe is not installed")
    from mediapipe.tasks.python.components.containers.rect import RectF
    from mediapipe.tasks.python.vision import ImageProcessingOptions

    path = exported.paths.export_dir / "model.tflite"
    rng = np.random.default_rng(0)
    with _classifier(path) as classifier:
        for src in preprocess_batch(exported.files[:6], exported.contract).array:
            side = src.shape[0]
            wide = rng.integers(0, 256, (side, side * 2, 3), dtype=np.uint8)
            left = side // 2
            wide[:, left:left + side] = src                   # centre crop = the original
            roi = ImageProcessingOptions(region_of_interest=RectF(
                left=left / wide.shape[1], top=0.0, right=(left + side) / wide.shape[1],
                bottom=1.0))
            cropped = classifier.classify(_mp_image(src)).classifications[0].categories
            framed = classifier.classify(_mp_image(wide), roi).classifications[0].categories
            whole = classifier.classify(_mp_image(wide)).classifications[0].categories
            assert [c.category_name for c in framed] == [c.category_name for c in cropped]
            np.testing.assert_allclose([c.score for c in framed],
                                       [c.score for c in cropped], atol=1e-5)
            assert max(abs(a.score - b.score) for a, b in zip(
                sorted(whole, key=lambda c: c.category_name),
                sorted(cropped, key=lambda c: c.category_name))) > 1e-4
