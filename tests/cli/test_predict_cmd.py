"""`edgeclf predict` through the CLI, checked against the library's own predictions."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from edgeclf.cli import app
from edgeclf.runtime import Predictor
from tests.fixtures.onnx_models import build_onnx, solid

pytest.importorskip("onnxruntime")
runner = CliRunner()


@pytest.fixture()
def model(tmp_path):
    return build_onnx(tmp_path / "model.onnx")


@pytest.fixture()
def folder(tmp_path):
    d = tmp_path / "imgs"
    (d / "sub").mkdir(parents=True)
    Image.fromarray(solid((240, 10, 10))).save(d / "red.png")
    Image.fromarray(solid((10, 10, 240))).save(d / "sub" / "blue.jpg")
    (d / "broken.jpg").write_text("not an image")
    (d / "notes.txt").write_text("not an image either, and not walked")
    Image.fromarray(solid((10, 240, 10))).save(d / ".hidden.png")
    return d


def _lines(result) -> list[dict]:
    return [json.loads(ln) for ln in result.stdout.splitlines() if ln.startswith("{")]


def test_json_lines_walk_a_folder_and_report_bad_files(model, folder):
    result = runner.invoke(app, ["predict", str(model), str(folder), "--json", "--top-k", "2"])
    assert result.exit_code == 1, result.output          # a failed item: broken.jpg
    assert _lines(result) == _lines(runner.invoke(
        app, ["predict", str(model), str(folder), "--json", "--top-k", "2", "--skip-bad"]))
    lines = _lines(result)
    files = [ln["file"] for ln in lines]
    assert files == [str(folder / n) for n in ("broken.jpg", "red.png", "sub/blue.jpg")]
    assert "error" in lines[0] and "not a readable image" in lines[0]["error"]
    library = Predictor.from_path(model).predict([folder / "red.png", folder / "sub/blue.jpg"],
                                                 top_k=2)
    for line, want in zip(lines[1:], library):
        assert [t["label"] for t in line["top"]] == list(want.labels)
        assert [t["score"] for t in line["top"]] == pytest.approx(list(want.scores))


def test_table_output(model, folder):
    result = runner.invoke(app, ["predict", str(model), str(folder / "red.png"),
                                 str(folder / "missing.png"), "--top-k", "3", "--skip-bad"])
    assert result.exit_code == 0, result.output
    assert "red" in result.stdout and "█" in result.stdout
    assert "missing.png" in result.stderr and "1 unreadable" in result.stderr
    result = runner.invoke(app, ["predict", str(model), str(folder / "red.png"),
                                 str(folder / "missing.png")])
    assert result.exit_code == 1 and "red" in result.stdout
    assert "Error:" in result.stderr and "--skip-bad" in result.stderr


def test_exit_1_when_nothing_could_be_predicted(model, folder, tmp_path):
    result = runner.invoke(app, ["predict", str(model), str(folder / "broken.jpg"), "--json"])
    assert result.exit_code == 1
    assert "error" in _lines(result)[0]
    (tmp_path / "empty").mkdir()
    assert runner.invoke(app, ["predict", str(model), str(tmp_path / "empty")]).exit_code == 1


@pytest.mark.parametrize("args,message", [
    (["missing.onnx"], "not found"),
    (["{model}", "--device", "gpu"], "CUDAExecutionProvider"),
    (["{model}", "--labels", "{labels}"], "labels"),
])
def test_model_errors_are_clean(model, folder, tmp_path, args, message):
    import onnxruntime as ort

    if "gpu" in args and "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("a CUDA provider is available here")
    labels = tmp_path / "labels.txt"
    labels.write_text("only\none\n")
    argv = [a.format(model=model, labels=labels) for a in args]
    argv = ["predict", argv[0], str(folder / "red.png"), *argv[1:]]
    result = runner.invoke(app, argv)
    assert result.exit_code == 1
    assert "Error:" in result.output and message in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_coral_acceptance(shared_dir):
    coral = shared_dir / "reference-models" / "coral"
    model = coral / "mobilenet_v2_1.0_224_quant.tflite"
    pytest.importorskip("ai_edge_litert")
    result = runner.invoke(app, ["predict", str(model), str(coral / "parrot.jpg"),
                                 str(coral / "cat.bmp"), str(coral / "grace_hopper.bmp"),
                                 "--labels", str(coral / "imagenet_labels.txt"), "--json"])
    assert result.exit_code == 0, result.output
    top = {ln["file"].rsplit("/", 1)[-1]: ln["top"][0]["label"] for ln in _lines(result)}
    assert top == {"parrot.jpg": "macaw", "cat.bmp": "Egyptian cat",
                   "grace_hopper.bmp": "military uniform"}
