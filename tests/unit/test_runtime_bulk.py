"""Bulk prediction (issue 17 item 5): streamed, in order, bounded look-ahead."""

from __future__ import annotations

import pytest
from PIL import Image

from edgeclf.runtime import Predictor
from edgeclf.runtime.bulk import predict_stream
from tests.fixtures.onnx_models import build_onnx, solid

pytest.importorskip("onnxruntime")


@pytest.fixture()
def predictor(tmp_path):
    with Predictor.from_path(build_onnx(tmp_path / "m.onnx")) as pred:
        yield pred


def test_stream_equals_predict_in_order_with_bad_files(predictor, tmp_path):
    paths = []
    for i in range(23):
        p = tmp_path / f"{i:02d}.png"
        if i == 7:
            p.write_text("not an image")
        else:
            Image.fromarray(solid((250, 10 * i, 10) if i % 2 else (10, 10 * i, 250))).save(p)
        paths.append(str(p))
    got = list(predict_stream(predictor, iter(paths), top_k=2, batch_size=4, decoders=2))
    want = predictor.predict(paths, top_k=2, strict=False)
    assert [p.index for p in got] == list(range(23))
    assert [p.source for p in got] == paths
    assert not got[7].ok and "not a readable image" in str(got[7].error)
    for g, w in zip(got, want):
        assert g.labels == w.labels and g.scores == pytest.approx(w.scores)


def test_stream_reads_its_input_lazily_with_bounded_look_ahead(predictor):
    image = solid((250, 10, 10))
    pulled = 0

    def endless():
        nonlocal pulled
        while True:
            pulled += 1
            yield image

    batch, ahead = 8, 2
    stream = predict_stream(predictor, endless(), batch_size=batch, decoders=2, ahead=ahead)
    for n, pred in enumerate(stream, start=1):
        assert pred.ok
        assert pulled <= n + (ahead + 1) * batch       # never more than this held
        if n == 500:
            break
    stream.close()
    with pytest.raises(ValueError, match="batch_size"):
        next(predict_stream(predictor, [image], batch_size=0))
