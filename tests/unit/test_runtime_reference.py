"""Third-party models (../shared/reference-models/coral): uint8 TFLite classifiers this
project did not make must load, take the default contract and classify real photos right."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgeclf.runtime import Predictor

pytest.importorskip("ai_edge_litert")
PHOTOS = {"parrot.jpg": "macaw", "cat.bmp": "Egyptian cat",
          "grace_hopper.bmp": "military uniform"}
MODELS = ["mobilenet_v2_1.0_224_quant.tflite", "tf2_mobilenet_v2_1.0_224_ptq.tflite",
          "mobilenet_v1_0.75_192_quant.tflite", "mobilenet_v1_0.5_160_quant.tflite",
          "mobilenet_v1_0.25_128_quant.tflite"]


@pytest.fixture(scope="module")
def coral(shared_dir):
    return shared_dir / "reference-models" / "coral"


@pytest.mark.parametrize("name", MODELS)
def test_coral_models_classify_the_photos(coral, name):
    p = Predictor.from_path(coral / name, labels=coral / "imagenet_labels.txt")
    assert p.input_dtype == np.uint8 and p.quantization == "int8" and p.fixed_batch == 1
    assert len(p.labels) == 1001 and p.labels[0] == "background"
    assert p.contract.resize == "squash" and p.contract.size == (p.contract.size[0],) * 2
    preds = p.predict([coral / f for f in PHOTOS], top_k=10)
    probs = p.predict_proba([coral / f for f in PHOTOS])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    if name.startswith(("mobilenet_v2", "tf2_mobilenet_v2")):  # the acceptance models
        assert [x.label for x in preds] == list(PHOTOS.values())
    else:  # the small v1 models are weaker (0.5/0.25 width: grace_hopper ranks 4th-6th)
        assert preds[0].label == "macaw" and "Egyptian cat" in preds[1].labels[:3]
        for pred, want in zip(preds, PHOTOS.values()):
            assert want in pred.labels, (name, pred.labels)


def test_tflite_without_tensorflow(coral, tmp_path):
    """LiteRT path in a subprocess where TensorFlow/Keras/JAX/Typer/Rich cannot be imported."""
    code = f"""
import json, sys
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {{"tensorflow", "keras", "jax", "typer", "rich"}}:
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Blocker())
from edgeclf.runtime import Predictor
p = Predictor.from_path({str(coral / MODELS[0])!r}, labels={str(coral / "imagenet_labels.txt")!r})
print(json.dumps([p.predict({str(coral / "parrot.jpg")!r})[0].label, p.provider]))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == ["macaw", "litert-cpu"]


def test_tflite_predictor_is_thread_safe(coral):
    from concurrent.futures import ThreadPoolExecutor

    p = Predictor.from_path(coral / MODELS[0], labels=coral / "imagenet_labels.txt")
    photos = [coral / f for f in PHOTOS]
    want = p.predict_proba(photos)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: p.predict_proba(photos), range(8)))
    for r in results:
        np.testing.assert_array_equal(r, want)
