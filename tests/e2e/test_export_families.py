"""EfficientNet and ResNet (weights=None, trained a few steps on real flower photos)
exported to every format (float32, plus int8 ONNX and TFLite) and checked against Keras.

float32 artifacts must equal Keras. int8 artifacts must load, run and give probabilities;
their agreement is not asserted here: a randomly initialised EfficientNet trained a few
steps quantizes badly (TFLite 33-47%, ONNX 23% top-1 agreement on 30 photos with either
ONNX recipe, U8S8 or U8U8, while its float artifacts match to 5e-6; printed with -s), which
says more about the model than the converters: both toolchains agree.

Heavy: several minutes per backbone on a 2-core machine (ResNet50V2 has 23M parameters),
so they run only when asked for: ``pytest -m slow tests/e2e/test_export_families.py`` or
``EDGECLF_SLOW=1``. MobileNetV2 is covered in the default suite by test_export_flowers.py.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from edgeclf.export import ExportConfig, export_run
from edgeclf.runtime.manifest import load_manifest

from tests.fixtures.export_checks import CALIBRATION, artifact_probs, check_against_keras, reference

pytestmark = [pytest.mark.slow, pytest.mark.shared]
FAMILIES = ("efficientnet", "resnet")


@pytest.fixture(autouse=True)
def _only_when_asked(request):
    asked = "slow" in (request.config.getoption("markexpr") or "")
    if not (asked or os.environ.get("EDGECLF_SLOW")):
        pytest.skip("heavy (minutes per backbone on 2 cores): run with -m slow or "
                    "EDGECLF_SLOW=1")


@pytest.mark.parametrize("backbone", FAMILIES)
def test_family_exports_to_every_format_and_matches_keras(backbone, shared_dir, tmp_path):
    from tests.fixtures.runs import make_trained_run

    run = make_trained_run(tmp_path, backbone=backbone, image_size=32,
                           data_dir=shared_dir / "data" / "flowers", per_class=12, epochs=6)
    images, ref = reference(run)
    assert ref.max(axis=1).mean() > 0.5, "the trained model is still near-uniform"
    result = export_run(run.root, ExportConfig(formats=("all",),
                                               quantizations=("none", "int8"),
                                               calibration_size=CALIBRATION))
    assert result.ok, [a.message for a in result.artifacts if a.status != "ok"]
    entries = load_manifest(run.paths.export_dir)["artifacts"]
    assert {(e["format"], e["quantization"]) for e in entries} == {
        ("savedmodel", "none"), ("onnx", "none"), ("onnx", "int8"), ("tflite", "none"),
        ("tflite", "int8")}
    for entry in entries:
        if entry["quantization"] == "none":
            check_against_keras(run, entry, images, ref)
            continue
        probs = artifact_probs(run.root, entry, images)
        agreement = float((probs.argmax(1) == ref.argmax(1)).mean())
        print(f"{backbone} {entry['file']}: top-1 agreement with Keras {agreement:.0%}")
        assert probs.shape == ref.shape and np.isfinite(probs).all()
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=0.05)
