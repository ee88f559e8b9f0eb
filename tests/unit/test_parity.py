"""check_parity on a small trained run exported to ONNX, TFLite and SavedModel."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeclf.errors import ConfigError, RunError
from edgeclf.fsutil import read_json
from edgeclf.parity import (DEFAULT_BUDGETS, check_parity, load_split_images, parse_budgets)
from edgeclf.runtime.manifest import load_manifest, sha256_file, verify_artifact
from tests.fixtures.parity import (add_broken_onnx, build_model, copy_run,
                                            export_onnx, make_exported_run)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_exported_run(tmp_path_factory.mktemp("parity"))


@pytest.fixture(scope="module")
def good(run, tmp_path_factory):
    """A copy of the run, checked once: (run copy, result)."""
    mine = copy_run(run, tmp_path_factory.mktemp("good"))
    return mine, check_parity(mine.root)


def test_reference_is_not_near_uniform(good):
    mine, result = good
    from edgeclf.evaluate import open_model

    ref = open_model(mine.paths.best, labels=mine.classes, contract=mine.contract)
    images = load_split_images(mine.paths, "test")
    probs = ref.predict(images.x)
    assert np.median(probs.max(axis=1)) > 2 / len(mine.classes)   # an untrained model hides bugs
    assert result.reference["accuracy"] > 1 / len(mine.classes)


def test_float_artifacts_pass_with_identical_answers(good):
    mine, result = good
    assert result.passed, [(a.file, a.breaches, a.error) for a in result.artifacts]
    assert {a.format for a in result.artifacts} == {"onnx", "tflite", "savedmodel"}
    n = len(json.loads(mine.paths.split.read_text())["test"])
    assert result.n_images == n and not result.skipped
    for a in result.artifacts:
        assert a.agreement == 1.0 and a.max_abs_diff <= DEFAULT_BUDGETS["none"].max_abs_diff
        assert a.accuracy == result.reference["accuracy"] and a.accuracy_delta == 0
        assert a.flipped == [] and a.n_flipped == 0
        assert a.batch["sizes"] == [1, 16] and a.batch["agreement"] == 1.0
        assert a.batch["mode"]


def test_parity_json_public_shape_and_manifest_summary(good):
    mine, result = good
    data = read_json(mine.paths.parity)
    assert data["passed"] is True and data["split"] == "test"
    assert data["n_images"] == result.n_images
    assert data["reference"]["accuracy"] == result.reference["accuracy"]
    for a in data["artifacts"]:
        for key in ("file", "format", "quantization", "agreement", "max_abs_diff",
                    "accuracy", "passed", "flipped"):
            assert key in a, key
    manifest = load_manifest(mine.paths.export_dir)
    for entry in manifest["artifacts"]:
        assert entry["parity"]["passed"] is True and entry["parity"]["split"] == "test"
        assert entry["parity"]["agreement"] == 1.0
        verify_artifact(mine.paths.export_dir, entry)   # hashes still valid after the edit


def test_broken_artifact_fails_and_is_named(run, tmp_path):
    mine = copy_run(run, tmp_path)
    add_broken_onnx(mine)
    result = check_parity(mine.root)
    assert not result.passed
    bad = {a.file: a for a in result.artifacts}["broken.onnx"]
    assert [a.file for a in result.failed] == ["broken.onnx"]
    assert bad.agreement < 1.0 and bad.max_abs_diff > 1e-2
    assert any("agreement" in b for b in bad.breaches)
    assert any("max prob diff" in b for b in bad.breaches)
    assert bad.n_flipped == len(bad.flipped) > 0
    flip = bad.flipped[0]
    assert set(flip) >= {"file", "reference", "artifact", "reference_confidence",
                         "artifact_confidence", "true"}
    assert flip["reference"] != flip["artifact"] and flip["reference"] in mine.classes
    assert read_json(mine.paths.parity)["passed"] is False
    assert load_manifest(mine.paths.export_dir)["artifacts"][-1]["parity"]["passed"] is False


def test_budget_override_and_formats_filter(run, tmp_path):
    mine = copy_run(run, tmp_path)
    add_broken_onnx(mine)
    loose = parse_budgets(["none.min_agreement=off", "none.max_abs_diff=1"])
    result = check_parity(mine.root, formats=["onnx"], budgets=loose)
    assert result.passed and {a.format for a in result.artifacts} == {"onnx"}
    strict = parse_budgets(["none.max_accuracy_drop=0"])
    assert strict["none"].max_accuracy_drop == 0 and strict["int8"] == DEFAULT_BUDGETS["int8"]
    for bad in (["none.agreement=1"], ["int9.min_agreement=1"], ["none.max_abs_diff=x"],
                ["none"]):
        with pytest.raises(ConfigError):
            parse_budgets(bad)
    conf = tmp_path / "budgets.json"
    conf.write_text(json.dumps({"int8": {"max_accuracy_drop": 2.5},
                                "float16": {"min_agreement": None}}))
    from_file = parse_budgets(["int8.min_agreement=0.9"], file=conf)
    assert from_file["int8"].max_accuracy_drop == 2.5 and from_file["int8"].min_agreement == 0.9
    assert from_file["float16"].min_agreement is None
    conf.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="budget file"):
        parse_budgets([], file=conf)
    with pytest.raises(ConfigError, match="no artifact"):
        check_parity(mine.root, formats=["coreml"])
    with pytest.raises(ConfigError, match="batch"):
        check_parity(mine.root, batch_size=1)


def test_hash_mismatch_is_refused_and_others_still_checked(run, tmp_path):
    mine = copy_run(run, tmp_path)
    manifest = json.loads(mine.paths.manifest.read_text())
    manifest["artifacts"][0]["sha256"] = "0" * 64
    mine.paths.manifest.write_text(json.dumps(manifest))
    result = check_parity(mine.root)
    refused, *rest = result.artifacts
    assert not result.passed and not refused.passed and "sha256" in refused.error
    assert refused.agreement is None
    assert rest and all(a.passed for a in rest)
    # an entry exported from another checkpoint than the reference is not compared
    manifest["artifacts"][0]["sha256"] = sha256_file(mine.paths.export_dir /
                                                     manifest["artifacts"][0]["file"])
    manifest["artifacts"][1]["checkpoint"] = {"file": "checkpoints/old.keras",
                                              "sha256": "a" * 64}
    mine.paths.manifest.write_text(json.dumps(manifest))
    first, stale, *_ = check_parity(mine.root).artifacts
    assert first.passed and not stale.passed and "another checkpoint" in stale.error


def test_class_count_mismatch_is_a_clear_error(run, tmp_path):
    from edgeclf.runtime.metadata import build_metadata

    mine = copy_run(run, tmp_path)
    four = build_model(len(mine.classes) - 1)
    entry = export_onnx(four, mine.paths.export_dir / "four.onnx",
                        build_metadata(mine.classes, mine.contract))
    manifest = json.loads(mine.paths.manifest.read_text())
    manifest["artifacts"] = [entry]
    mine.paths.manifest.write_text(json.dumps(manifest))
    (row,) = check_parity(mine.root).artifacts
    assert not row.passed
    assert f"{len(mine.classes)} labels" in row.error and "outputs" in row.error


def test_missing_and_changed_images_are_reported_and_skipped(run, tmp_path):
    from edgeclf.data.scan import scan_dataset

    mine = copy_run(run, tmp_path, data=True)
    split = json.loads(mine.paths.split.read_text())
    gone, changed = split["test"][0], split["test"][1]
    hashes = {p: sha256_file(mine.data_dir / p) for p in split["test"]}
    run_json = json.loads(mine.paths.run_json.read_text())
    run_json["dataset"]["fingerprint"] = scan_dataset(mine.data_dir).fingerprint
    mine.paths.run_json.write_text(json.dumps(run_json))
    (mine.data_dir / gone).unlink()
    other = mine.data_dir / split["test"][-1]
    (mine.data_dir / changed).write_bytes(other.read_bytes())

    # without per-file hashes: the missing file is named, the change only detected
    result = check_parity(mine.root, write=False)
    assert [(s.file, s.reason) for s in result.skipped] == [(gone, "missing")]
    assert any("fingerprint" in w for w in result.warnings)
    # with the hashes the training stage records in split.json, the changed file is named
    split["sha256"] = hashes
    mine.paths.split.write_text(json.dumps(split))
    result = check_parity(mine.root)
    assert sorted((s.file, s.reason) for s in result.skipped) == sorted(
        [(gone, "missing"), (changed, "changed")])
    assert result.n_images == len(split["test"]) - 2 and result.passed
    assert read_json(mine.paths.parity)["n_skipped"] == 2


def test_max_images_is_class_balanced(run):
    images = load_split_images(run.paths, "test", max_images=len(run.classes) * 2)
    assert np.bincount(images.y, minlength=len(run.classes)).tolist() == [2] * len(run.classes)
    val = load_split_images(run.paths, "val")
    assert len(val.files) == len(json.loads(run.paths.split.read_text())["val"])
    with pytest.raises(ConfigError):
        load_split_images(run.paths, "holdout")


def test_checkpoint_changed_since_export_is_refused(run, tmp_path):
    mine = copy_run(run, tmp_path)
    manifest = json.loads(mine.paths.manifest.read_text())
    manifest["checkpoint"]["sha256"] = "f" * 64
    mine.paths.manifest.write_text(json.dumps(manifest))
    with pytest.raises(RunError, match="changed since export"):
        check_parity(mine.root)


def test_fixed_batch_tflite_runs_image_by_image_and_says_so(run, tmp_path):
    import keras
    import tensorflow as tf

    from edgeclf.runtime.metadata import build_metadata, embed_tflite
    from tests.fixtures.parity import entry

    mine = copy_run(run, tmp_path)
    model = build_model(len(mine.classes), batch_size=1)      # input (1, H, W, 3)
    model.set_weights(keras.saving.load_model(mine.paths.best, compile=False).get_weights())
    path = mine.paths.export_dir / "fixed.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    embed_tflite(path, build_metadata(mine.classes, mine.contract))
    manifest = json.loads(mine.paths.manifest.read_text())
    manifest["artifacts"] = [entry(path, "tflite", "none")]
    mine.paths.manifest.write_text(json.dumps(manifest))
    (row,) = check_parity(mine.root).artifacts
    assert row.passed, (row.breaches, row.error)
    assert row.batch["mode"].startswith("fixed batch 1") and "image by image" in row.batch["mode"]
    assert row.batch["sizes"] == [1, 16] and row.batch["agreement"] == 1.0
