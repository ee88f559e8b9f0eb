"""The tiny ONNX classifiers of tests/fixtures/onnx_models.py compute what they promise."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")

from tests.fixtures.onnx_models import (CLASSES, SIZE, build_onnx, expected,  # noqa: E402,F401
                                        solid, write_manifest)


def test_built_model_matches_expected(tmp_path):
    import onnxruntime as ort

    path = build_onnx(tmp_path / "m.onnx")
    x = np.stack([solid((250, 10, 10), (20, 16)), solid((10, 10, 250), (20, 16))])
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"image": x.astype(np.float32)})
    np.testing.assert_allclose(y, expected(x), rtol=1e-5, atol=1e-6)
    assert y.argmax(axis=1).tolist() == [0, 2]
