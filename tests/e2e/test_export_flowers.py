"""Export a MobileNetV2 trained a few steps on real flower photos to every format and
quantization; each artifact runs in its runtime and matches the Keras checkpoint."""

from __future__ import annotations

import numpy as np
import pytest

from edgeclf.data.split import Split
from edgeclf.export import ExportConfig, export_run
from edgeclf.runtime.manifest import load_manifest, sha256_file, verify_artifact
from tests.fixtures.export_checks import (CALIBRATION, artifact_probs, check_against_keras,
                                          reference)

pytestmark = [pytest.mark.slow, pytest.mark.shared]

ALL = [(f, q) for f in ("savedmodel",) for q in ("none",)] + \
      [(f, q) for f in ("onnx", "tflite") for q in ("none", "dynamic", "float16", "int8")]
@pytest.fixture(scope="module")
def exported(shared_dir, tmp_path_factory):
    from tests.fixtures.runs import make_trained_run

    run = make_trained_run(tmp_path_factory.mktemp("flowers"), backbone="mobilenetv2",
                           image_size=32, data_dir=shared_dir / "data" / "flowers",
                           per_class=12, epochs=8)
    result = export_run(run.root, ExportConfig(
        formats=("all",), quantizations=("none", "dynamic", "float16", "int8"),
        calibration_size=CALIBRATION))
    images, ref = reference(run)
    assert ref.max(axis=1).mean() > 0.5, "the trained model is still near-uniform"
    return run, result, images, ref


def _entry(run, fmt: str, q: str) -> dict:
    manifest = load_manifest(run.paths.export_dir)
    (entry,) = [a for a in manifest["artifacts"] if (a["format"], a["quantization"]) == (fmt, q)]
    return entry


def test_every_artifact_is_written_and_verifies(exported):
    run, result, _, _ = exported
    assert result.ok and [(a.format, a.quantization) for a in result.artifacts] == ALL
    manifest = load_manifest(run.paths.export_dir)
    assert len(manifest["artifacts"]) == len(ALL)
    for entry in manifest["artifacts"]:
        path = verify_artifact(run.paths.export_dir, entry)
        assert entry["sha256"] == sha256_file(path) and entry["bytes"] > 0
        assert entry["labels"] == run.classes
        assert entry["checkpoint"] == {"file": "checkpoints/best.keras",
                                       "sha256": sha256_file(run.paths.best)}
        assert entry["inputs"][0]["shape"] == [None, 32, 32, 3]       # dynamic batch
        assert entry["outputs"][0]["shape"] == [None, len(run.classes)]
        assert entry["converter"] and entry["export_seconds"] > 0
    assert (run.paths.export_dir / "labels.txt").read_text().split() == run.classes


@pytest.mark.parametrize("fmt,quantization", ALL, ids=[f"{f}-{q}" for f, q in ALL])
def test_artifact_matches_keras_on_real_photos(exported, fmt, quantization):
    run, _, images, ref = exported
    check_against_keras(run, _entry(run, fmt, quantization), images, ref)


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_batch_one_equals_batch_many(exported, fmt):
    run, _, images, _ = exported
    entry = _entry(run, fmt, "none")
    many = artifact_probs(run.root, entry, images[:5])
    one = np.concatenate([artifact_probs(run.root, entry, images[i:i + 1]) for i in range(5)])
    np.testing.assert_allclose(one, many, atol=1e-5)


def test_metadata_travels_inside_every_artifact(exported):
    from edgeclf.runtime import metadata as md

    run, _, _, _ = exported
    export_dir = run.paths.export_dir
    sha = sha256_file(run.paths.best)
    metas = [md.read_savedmodel_assets(export_dir / "saved_model"),
             md.read_tflite(export_dir / "model.int8.tflite"),
             md.read_tflite(export_dir / "model.tflite")]
    import onnx

    for name in ("model.onnx", "model.int8.onnx", "model.float16.onnx"):
        props = {p.key: p.value for p in onnx.load(str(export_dir / name)).metadata_props}
        metas.append(md.from_onnx_props(props))
    for meta in metas:
        assert meta["labels"] == run.classes and meta["checkpoint_sha256"] == sha
        assert meta["preprocessing"] == run.contract.to_dict()


def test_int8_tflite_takes_raw_uint8_pixels_and_is_small(exported):
    run, result, _, _ = exported
    entry = _entry(run, "tflite", "int8")
    (inp,), (out,) = entry["inputs"], entry["outputs"]
    assert (inp["dtype"], inp["scale"], inp["zero_point"]) == ("uint8", 1.0, 0)
    assert out["dtype"] == "uint8" and 0 < out["scale"] < 1
    ratio = {(a.format, a.quantization): a.size_vs_float32 for a in result.artifacts}
    assert ratio[("tflite", "int8")] < 0.5 and ratio[("tflite", "float16")] < 0.6
    assert ratio[("onnx", "int8")] < 0.5 and ratio[("tflite", "none")] == 1.0


def test_calibration_is_a_stratified_sample_of_the_training_split(exported):
    run, _, _, _ = exported
    manifest = load_manifest(run.paths.export_dir)
    calib = manifest["calibration"]
    split = Split.read(run.paths.split)
    assert calib["split"] == "train" and calib["seed"] == 0
    assert len(calib["files"]) == min(CALIBRATION, len(split.train))
    assert set(calib["files"]) <= set(split.train)
    assert {f.split("/")[0] for f in calib["files"]} == set(run.classes)
    assert _entry(run, "onnx", "int8")["calibration"]["size"] == len(calib["files"])


def test_reexporting_one_artifact_keeps_the_others(exported):
    run, _, images, ref = exported
    before = {a["file"]: a["sha256"] for a in load_manifest(run.paths.export_dir)["artifacts"]}
    export_run(run.root, ExportConfig(formats=("tflite",), quantizations=("int8",),
                                      calibration_size=CALIBRATION, int8_io="int8"))
    manifest = load_manifest(run.paths.export_dir)
    after = {a["file"]: a["sha256"] for a in manifest["artifacts"]}
    assert set(after) == set(before)
    changed = [f for f in after if after[f] != before[f]]
    assert changed == ["model.int8.tflite"]
    entry = _entry(run, "tflite", "int8")
    assert (entry["inputs"][0]["dtype"], entry["inputs"][0]["zero_point"]) == ("int8", -128)
    check_against_keras(run, entry, images, ref)
