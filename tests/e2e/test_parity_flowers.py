"""Parity and eval on real photos (../shared/data/flowers): a small model trained a few
epochs on 16 images per class, exported, then checked on its held-out photos."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from edgeclf.cli import app
from edgeclf.evaluate import evaluate
from edgeclf.fsutil import read_json
from edgeclf.parity import check_parity
from tests.fixtures.parity import add_broken_onnx, copy_run, make_exported_run

pytestmark = [pytest.mark.slow, pytest.mark.shared]


@pytest.fixture(scope="module")
def flowers_run(shared_dir, tmp_path_factory):
    return make_exported_run(tmp_path_factory.mktemp("flowers"), name="flowers-tiny",
                             data_dir=shared_dir / "data" / "flowers", per_class=16)


def test_float_artifacts_equal_the_checkpoint_on_real_photos(flowers_run, tmp_path):
    mine = copy_run(flowers_run, tmp_path)
    result = check_parity(mine.root)
    assert result.passed, [(a.file, a.breaches, a.error) for a in result.artifacts]
    assert result.n_images == len(json.loads(mine.paths.split.read_text())["test"])
    assert all(a.agreement == 1.0 and a.max_abs_diff <= 1e-4 for a in result.artifacts)
    keras = evaluate(mine.root)
    onnx = evaluate(mine.paths.export_dir / "model.onnx")
    assert onnx.accuracy == keras.accuracy == result.reference["accuracy"]


def test_wrong_normalisation_is_caught_on_real_photos(flowers_run, tmp_path):
    mine = copy_run(flowers_run, tmp_path)
    add_broken_onnx(mine)
    result = runner_invoke(["parity", str(mine.root), "--formats", "onnx"])
    assert result.exit_code == 1 and "broken.onnx" in result.output
    rows = {a["file"]: a for a in read_json(mine.paths.parity)["artifacts"]}
    assert rows["model.onnx"]["passed"] and not rows["broken.onnx"]["passed"]
    assert rows["broken.onnx"]["flipped"]


def test_deleted_photo_is_reported(flowers_run, tmp_path):
    mine = copy_run(flowers_run, tmp_path, data=True)
    split = json.loads(mine.paths.split.read_text())
    # the copy holds only the run's images; delete one test photo
    (mine.data_dir / split["test"][0]).unlink()
    result = check_parity(mine.root, formats=["onnx"])
    assert [(s.file, s.reason) for s in result.skipped] == [(split["test"][0], "missing")]
    assert result.n_images == len(split["test"]) - 1 and result.passed


def test_real_exporter_artifacts_onnx(flowers_run, tmp_path):
    """The artifacts of `edgeclf export` itself: float32 equal, quantized ones reported."""
    export = pytest.importorskip("edgeclf.export.exporter")
    mine = copy_run(flowers_run, tmp_path)
    res = export.export_run(mine.root, export.ExportConfig(
        formats=("onnx",), quantizations=("none", "dynamic", "int8"), calibration_size=32))
    assert res.ok, [(a.format, a.quantization, a.message) for a in res.artifacts]
    result = check_parity(mine.root, formats=["onnx"])
    rows = {a.quantization: a for a in result.artifacts}
    assert rows["none"].passed and rows["none"].agreement == 1.0
    for q in ("dynamic", "int8"):
        assert rows[q].error is None and rows[q].accuracy is not None
        assert rows[q].accuracy_delta == pytest.approx(
            (rows[q].accuracy - result.reference["accuracy"]) * 100)


def runner_invoke(args: list[str]):
    return CliRunner().invoke(app, args)
