"""uint8-input ONNX graphs (the cast inside the graph) next to float32 ones, and what the
predictor does with float pixel arrays: an exact conversion or a clear error, never a silent
wrong answer."""

from __future__ import annotations

import numpy as np
import pytest

from edgeclf.runtime import ImageError, ModelError, Predictor, preprocess_batch

from tests.fixtures.onnx_models import SIZE, build_onnx, expected, solid

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The same tiny classifier with float32 input (as exported before) and uint8 input."""
    from edgeclf.export.onnx import uint8_input

    root = tmp_path_factory.mktemp("pixels")
    old = build_onnx(root / "float32.onnx")
    model = onnx.load(str(old))
    assert uint8_input(model) is True
    assert uint8_input(model) is False          # already uint8: left alone
    onnx.checker.check_model(model, full_check=True)
    new = root / "uint8.onnx"
    onnx.save(model, str(new))
    return Predictor.from_path(old), Predictor.from_path(new)


def _batch(n=5, seed=0):
    rng = np.random.default_rng(seed)
    h, w = SIZE
    return rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_uint8_graph_takes_uint8_and_answers_like_the_float32_one(pair):
    old, new = pair
    assert old.input_dtype == np.float32 and new.input_dtype == np.uint8
    assert new.quantization is None               # uint8 pixels in, float compute: not int8
    x = _batch()
    np.testing.assert_array_equal(old.run(x), new.run(x))
    np.testing.assert_allclose(new.run(x), expected(x), rtol=1e-5, atol=1e-6)
    images = [solid((240, 10, 10)), solid((10, 10, 240))]
    assert [p.label for p in old.predict(images)] == [p.label for p in new.predict(images)]
    assert [p.label for p in new.predict(images)] == ["red", "blue"]


def test_whole_float_pixels_are_converted_exactly(pair):
    x = _batch(3, seed=1)
    for p in pair:
        np.testing.assert_array_equal(p.run(x.astype(np.float32)), p.run(x))
        np.testing.assert_array_equal(p.run(x.astype(np.float64)), p.run(x))


def test_fractional_pixels_go_to_a_float_model_and_are_refused_by_a_uint8_one(pair):
    old, new = pair
    x = _batch(2, seed=2).astype(np.float32) + 0.25
    x = np.minimum(x, 255.0)
    np.testing.assert_allclose(old.run(x), expected(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(ModelError, match="fractional"):
        new.run(x)


@pytest.mark.parametrize("make, match", [
    (lambda x: x.astype(np.float32) / 255.0, "normalised"),
    (lambda x: x.astype(np.float32) - 1.0, "outside"),
    (lambda x: x.astype(np.float32) * 2.0, "outside"),
    (lambda x: np.where(x > 128, np.nan, x).astype(np.float32), "outside"),
    (lambda x: x.astype(np.int32), "uint8"),
])
def test_float_pixels_that_are_not_0_255_are_an_image_error(pair, make, match):
    x = make(_batch(2, seed=3))
    for p in pair:
        with pytest.raises(ImageError, match=match):
            p.run(x)


def test_a_batch_over_one_chunk_and_an_empty_batch(pair):
    old, new = pair
    x = _batch(40, seed=4)                        # over MAX_CHUNK: two chunks
    np.testing.assert_array_equal(new.run(x)[32:], new.run(x[32:]))
    np.testing.assert_allclose(old.run(x), expected(x), rtol=1e-5, atol=1e-6)
    assert new.run(np.zeros((0, *SIZE, 3), np.float32)).shape == (0, 3)


def test_predict_from_images_is_unchanged(pair, tmp_path):
    old, new = pair
    images = [solid((10, 240, 10)), solid((240, 240, 10))]
    batch = preprocess_batch(images, new.contract).array
    np.testing.assert_allclose(new.predict_proba(images), expected(batch), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_array_equal(old.predict_proba(images), new.predict_proba(images))
