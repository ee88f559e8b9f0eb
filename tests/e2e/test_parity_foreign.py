"""`edgeclf eval` on a model this project did not make: the Coral MobileNetV2 uint8 TFLite
(1001 outputs with background) with its labels file, on a folder named like its labels."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from edgeclf.cli import app
from edgeclf.fsutil import read_json

pytestmark = [pytest.mark.shared]

PHOTOS = {"parrot.jpg": "macaw", "cat.bmp": "Egyptian cat",
          "grace_hopper.bmp": "military uniform"}


def test_eval_foreign_int8_tflite_with_labels_file(shared_dir, tmp_path):
    coral = shared_dir / "reference-models" / "coral"
    model = coral / "mobilenet_v2_1.0_224_quant.tflite"
    if not model.is_file():
        pytest.skip(f"{model} is absent")
    data = tmp_path / "data"
    for photo, label in PHOTOS.items():
        (data / label).mkdir(parents=True)
        shutil.copy(coral / photo, data / label / photo)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["eval", str(model), "--data", str(data), "--labels",
                                      str(coral / "imagenet_labels.txt"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    ev = read_json(out / "eval.json")
    assert ev["n_images"] == 3 and ev["accuracy"] == 1.0 and ev["quantization"] == "int8"
    assert len(ev["labels"]) == 1001 and "confusion_cells" in ev   # background + 1000
    assert (out / "confusion_matrix.png").is_file()
