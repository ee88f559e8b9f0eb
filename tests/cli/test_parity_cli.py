"""`edgeclf parity` and `edgeclf eval` through the CLI; state checked through the library."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from edgeclf.cli import app
from edgeclf.evaluate import evaluate
from edgeclf.fsutil import read_json
from edgeclf.runtime.manifest import load_manifest, verify_artifact
from tests.fixtures.parity import add_broken_onnx, copy_run, make_exported_run

runner = CliRunner()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_exported_run(tmp_path_factory.mktemp("cli"))


def test_parity_passes_for_float_artifacts(run, tmp_path):
    mine = copy_run(run, tmp_path)
    result = runner.invoke(app, ["parity", str(mine.root), "--max-images", "10"])
    assert result.exit_code == 0, result.output
    data = read_json(mine.paths.parity)
    assert data["passed"] is True and data["n_images"] == 10
    for entry in load_manifest(mine.paths.export_dir)["artifacts"]:
        assert entry["parity"]["passed"] is True
        verify_artifact(mine.paths.export_dir, entry)


def test_broken_artifact_exits_non_zero_and_is_named(run, tmp_path):
    mine = copy_run(run, tmp_path)
    add_broken_onnx(mine)
    result = runner.invoke(app, ["parity", str(mine.root), "--formats", "onnx"])
    assert result.exit_code == 1
    assert "Error:" in result.output and "broken.onnx" in result.output
    assert "agreement" in result.output
    data = read_json(mine.paths.parity)
    status = {a["file"]: a["passed"] for a in data["artifacts"]}
    assert status == {"model.onnx": True, "broken.onnx": False}
    # a looser budget for float32 artifacts, given on the command line, lets it through
    result = runner.invoke(app, ["parity", str(mine.root), "--formats", "onnx",
                                 "--budget", "none.min_agreement=off",
                                 "--budget", "none.max_abs_diff=off"])
    assert result.exit_code == 0, result.output
    assert read_json(mine.paths.parity)["passed"] is True


def test_parity_bad_budget_and_missing_run(run, tmp_path):
    result = runner.invoke(app, ["parity", str(run.root), "--budget", "int8=2"])
    assert result.exit_code == 2 and "QUANT.FIELD=VALUE" in result.output   # bad usage
    result = runner.invoke(app, ["parity", str(tmp_path / "nope")])
    assert result.exit_code == 1 and "Error:" in result.output


def test_eval_run_and_its_onnx_give_the_same_accuracy(run, tmp_path):
    mine = copy_run(run, tmp_path)
    result = runner.invoke(app, ["eval", str(mine.root)])
    assert result.exit_code == 0, result.output
    keras_eval = read_json(mine.paths.eval_json)
    assert mine.paths.confusion_png.is_file()
    onnx = mine.paths.export_dir / "model.onnx"
    result = runner.invoke(app, ["eval", str(onnx)])
    assert result.exit_code == 0, result.output
    onnx_eval = read_json(mine.root / "eval" / "model.onnx" / "eval.json")
    assert onnx_eval["accuracy"] == keras_eval["accuracy"]
    assert onnx_eval["format"] == "onnx" and keras_eval["format"] == "keras"
    assert keras_eval["accuracy"] == evaluate(mine.root).accuracy


def test_eval_foreign_onnx_with_labels_file(run, tmp_path):
    import onnx

    proto = onnx.load(str(run.paths.export_dir / "model.onnx"))
    del proto.metadata_props[:]
    model = tmp_path / "someone-elses.onnx"
    onnx.save(proto, str(model))
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(run.classes) + "\n")
    out = tmp_path / "out"
    result = runner.invoke(app, ["eval", str(model), "--data", str(run.data_dir),
                                 "--labels", str(labels), "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = read_json(out / "eval.json")
    assert data["labels"] == run.classes and data["n_images"] > 0
    assert (out / "confusion_matrix.png").is_file()
    result = runner.invoke(app, ["eval", str(model), "--data", str(run.data_dir)])
    assert result.exit_code == 1 and "--labels" in result.output
