"""Property/fuzz tests of preprocessing and the predictor's input handling (issue 9 item 4).

Random bytes, corrupted real encodings, random Pillow modes, sizes, formats and contracts:
the only exception ever allowed is :class:`ImageError`, and a decodable image of usable size
always gives a uint8 (H, W, 3) array. Bounded to a few seconds here; set
``EDGECLF_FUZZ_EXAMPLES`` to run more, or run ``benchmarks/fuzz_preprocess.py`` for minutes.
"""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from edgeclf.runtime import Contract, ImageError, preprocess
from edgeclf.runtime.contract import INTERPOLATIONS, RESIZE_MODES
from edgeclf.runtime.preprocess import MIN_SIDE

EXAMPLES = int(os.environ.get("EDGECLF_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=2000, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])

# mode -> formats that can store it
MODES = {"1": ["PNG", "BMP", "TIFF"], "L": ["PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP"],
         "P": ["PNG", "GIF", "BMP", "TIFF"], "RGB": ["PNG", "JPEG", "BMP", "TIFF", "WEBP"],
         "RGBA": ["PNG", "TIFF", "WEBP"], "LA": ["PNG"], "CMYK": ["JPEG", "TIFF"],
         "I;16": ["PNG", "TIFF"], "I": ["TIFF"], "F": ["TIFF"], "YCbCr": ["JPEG"]}

contracts = st.builds(
    lambda h, w, r, i: Contract(size=(h, w), resize=r, interpolation=i),
    st.integers(1, 48), st.integers(1, 48), st.sampled_from(RESIZE_MODES),
    st.sampled_from(INTERPOLATIONS))


@st.composite
def encoded_images(draw):
    mode = draw(st.sampled_from(sorted(MODES)))
    fmt = draw(st.sampled_from(MODES[mode]))
    w, h = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 255, (h, w, 3), np.uint8)).convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return mode, fmt, (w, h), buf.getvalue()


def _check(source, contract: Contract) -> np.ndarray | None:
    try:
        out = preprocess(source, contract)
    except ImageError:
        return None
    assert out.dtype == np.uint8 and out.shape == (contract.height, contract.width, 3)
    return out


@FUZZ
@given(data=st.binary(max_size=600), contract=contracts)
def test_random_bytes(data, contract):
    _check(data, contract)


@FUZZ
@given(image=encoded_images(), contract=contracts)
def test_random_modes_sizes_formats(image, contract):
    mode, fmt, (w, h), data = image
    out = _check(data, contract)
    if min(w, h) >= MIN_SIDE:
        assert out is not None, f"a valid {w}x{h} {mode} {fmt} was refused"
    else:
        assert out is None, f"a {w}x{h} image is below the minimum side and must be refused"


@FUZZ
@given(image=encoded_images(), contract=contracts,
       cut=st.floats(0.05, 0.95), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)),
                                                 max_size=8))
def test_corrupted_encodings(image, contract, cut, flips):
    data = bytearray(image[3])
    for where, value in flips:
        data[int(where * (len(data) - 1))] = value
    _check(bytes(data), contract)
    _check(bytes(data[: max(1, int(len(data) * cut))]), contract)


@FUZZ
@given(shape=st.lists(st.integers(0, 12), min_size=1, max_size=4),
       dtype=st.sampled_from([np.uint8, np.int8, np.uint16, np.float32, np.bool_]),
       contract=contracts)
def test_random_arrays(shape, dtype, contract):
    _check(np.zeros(shape, dtype), contract)


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    from edgeclf.runtime import Predictor

    from tests.fixtures.onnx_models import build_onnx
    return Predictor.from_path(build_onnx(tmp_path_factory.mktemp("fz") / "m.onnx"))


@FUZZ
@given(items=st.lists(st.one_of(st.binary(max_size=200), encoded_images().map(lambda t: t[3]),
                                st.none(), st.integers(), st.text(max_size=5)),
                      min_size=1, max_size=5))
def test_predictor_input_handling(predictor, items):
    preds = predictor.predict(items, strict=False)
    assert [p.index for p in preds] == list(range(len(items)))
    for p in preds:
        assert (p.error is None) == (p.label is not None)
        assert p.error is None or isinstance(p.error, ImageError)
    ok = [x for x, p in zip(items, preds) if p.ok]
    if ok:
        probs = predictor.predict_proba(ok)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
