"""The ONNX predictor: inputs, metadata, output rule, devices, bad models."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from PIL import Image

from edgeclf.runtime import (Contract, DeviceError, ImageError, ModelError, Predictor,
                             preprocess_batch, to_probabilities)

from tests.fixtures.onnx_models import CLASSES, SIZE, build_onnx, expected, solid

ort = pytest.importorskip("onnxruntime")
RED, GREEN, BLUE = (240, 20, 20), (20, 240, 20), (20, 20, 240)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return build_onnx(tmp_path_factory.mktemp("m") / "model.onnx")


@pytest.fixture(scope="module")
def predictor(model):
    return Predictor.from_path(model)


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_metadata_gives_labels_and_contract(predictor, model):
    assert predictor.labels == CLASSES
    assert predictor.contract == Contract(size=SIZE)
    assert predictor.format == "onnx" and predictor.provider == "CPUExecutionProvider"
    assert predictor.input_dtype == np.float32 and predictor.path == model


def test_every_input_kind_gives_the_same_answer(predictor, tmp_path):
    arr = solid(GREEN)
    path = tmp_path / "g.png"
    Image.fromarray(arr).save(path)
    inputs = [arr, str(path), path, _png(arr), Image.fromarray(arr), io.BytesIO(_png(arr))]
    preds = predictor.predict(inputs, top_k=2)
    assert [p.label for p in preds] == ["green"] * len(inputs)
    assert {round(p.score, 6) for p in preds} == {round(preds[0].score, 6)}
    assert preds[1].source == str(path) and preds[0].source is None
    assert len(predictor.predict(arr)) == 1  # a single image
    assert [p.label for p in predictor.predict(np.stack([solid(RED), solid(BLUE)]))] == \
        ["red", "blue"]  # a 4-D array is a batch


def test_probabilities_match_the_model(predictor):
    images = [solid(RED), solid(GREEN), solid(BLUE, (64, 64))]
    batch = preprocess_batch(images, predictor.contract).array
    probs = predictor.predict_proba(images)
    assert probs.dtype == np.float32 and probs.shape == (3, 3)
    np.testing.assert_allclose(probs, expected(batch), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(predictor.run(batch), probs, rtol=1e-6)
    top = predictor.predict(images[0], top_k=10)[0]
    assert top.labels[0] == "red" and len(top.labels) == 3  # top_k is capped at C
    assert list(top.scores) == sorted(top.scores, reverse=True)
    assert top.to_dict()["top"][0] == {"label": "red", "class": 0, "score": top.score}


def test_logits_get_softmax(tmp_path):
    p = Predictor.from_path(build_onnx(tmp_path / "logits.onnx", softmax=False))
    images = [solid(RED), solid(BLUE)]
    batch = preprocess_batch(images, p.contract).array
    np.testing.assert_allclose(p.predict_proba(images), expected(batch), rtol=1e-5, atol=1e-6)


def test_output_rule():
    probs = np.array([[0.2, 0.8], [0.5, 0.5]], np.float32)
    np.testing.assert_array_equal(to_probabilities(probs), probs)  # unchanged
    logits = np.array([[2.0, -1.0], [0.3, 0.1]], np.float32)
    out = to_probabilities(logits)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6)
    assert out[0, 0] > 0.9
    # in [0, 1] but rows do not sum to 1 (e.g. sigmoids): softmax, whole batch
    np.testing.assert_allclose(to_probabilities(np.array([[0.9, 0.9], [0.5, 0.5]])),
                               [[0.5, 0.5], [0.5, 0.5]])
    quant = np.array([[0.5, 0.45, 0.0], [0.0, 0.0, 0.0]], np.float32)  # rounding lost mass
    np.testing.assert_allclose(to_probabilities(quant, quantized=True),
                               [[0.5 / 0.95, 0.45 / 0.95, 0], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6)
    with pytest.raises(ModelError):
        to_probabilities(np.array([[np.nan, 1.0]]))


def test_unusable_image_strict_and_not(predictor):
    good, bad = solid(RED), b"definitely not an image"
    with pytest.raises(ImageError):
        predictor.predict([good, bad])
    with pytest.raises(ImageError):
        predictor.predict_proba([good, bad])
    preds = predictor.predict([good, bad, good], strict=False)
    assert [p.ok for p in preds] == [True, False, True]
    assert preds[1].label is None and "error" in preds[1].to_dict()
    assert preds[2].index == 2 and preds[2].label == "red"
    assert all(not p.ok for p in predictor.predict([bad], strict=False))
    with pytest.raises(ValueError):
        predictor.predict(good, top_k=0)


def test_run_checks_its_batch(predictor):
    h, w = SIZE
    with pytest.raises(ImageError, match="uint8"):
        predictor.run(np.zeros((1, h, w, 3), np.int16))
    with pytest.raises(ImageError, match="normalised"):   # floats: see test_runtime_pixels
        predictor.run(np.full((1, h, w, 3), 0.5, np.float32))
    with pytest.raises(ImageError):
        predictor.run(np.zeros((1, h + 1, w, 3), np.uint8))
    with pytest.raises(ImageError):
        predictor.run([[1, 2, 3]])
    assert predictor.run(np.zeros((0, h, w, 3), np.uint8)).shape[0] == 0


def test_model_without_metadata(tmp_path):
    path = build_onnx(tmp_path / "foreign.onnx", labels=None)
    with pytest.raises(ModelError, match="labels="):
        Predictor.from_path(path)
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text("background\nr\ng\nb\n")  # index 0 = background is dropped
    p = Predictor.from_path(path, labels=labels_file)
    assert p.labels == ["r", "g", "b"]
    assert p.contract == Contract(size=SIZE, resize="squash", interpolation="bilinear")
    assert p.predict(solid(BLUE))[0].label == "b"
    with pytest.raises(ModelError, match="4 labels"):
        Predictor.from_path(path, labels=["a", "b", "c", "d"])
    with pytest.raises(ModelError, match="does not match"):
        Predictor.from_path(path, labels=["a", "b", "c"], contract=Contract(size=(8, 8)))


def test_dynamic_size_needs_a_contract(tmp_path):
    path = build_onnx(tmp_path / "dyn.onnx", size=("H", "W"), labels=None)
    with pytest.raises(ModelError, match="contract="):
        Predictor.from_path(path, labels=["a", "b", "c"])
    p = Predictor.from_path(path, labels=["a", "b", "c"], contract={"size": [24, 24]})
    assert p.predict(solid(GREEN))[0].label == "b"


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_integer_input_models(tmp_path, dtype):
    p = Predictor.from_path(build_onnx(tmp_path / f"{dtype}.onnx", input_dtype=dtype))
    assert p.input_dtype == np.dtype(dtype)
    images = [solid(RED), solid(GREEN)]
    batch = preprocess_batch(images, p.contract).array
    np.testing.assert_allclose(p.predict_proba(images), expected(batch), rtol=1e-5, atol=1e-6)


def test_fixed_batch_model_runs_any_batch(tmp_path):
    p = Predictor.from_path(build_onnx(tmp_path / "b1.onnx", batch=1))
    images = [solid(RED), solid(GREEN), solid(BLUE)]
    assert [x.label for x in p.predict(images)] == ["red", "green", "blue"]
    p2 = Predictor.from_path(build_onnx(tmp_path / "b2.onnx", batch=2))
    assert [x.label for x in p2.predict(images)] == ["red", "green", "blue"]  # padded


def test_concurrent_use_from_threads(predictor):
    images = [solid(c) for c in (RED, GREEN, BLUE)] * 4
    want = predictor.predict_proba(images)
    results, errors = [], []

    def work():
        try:
            results.append(predictor.predict_proba(images))
        except Exception as e:  # noqa: BLE001 - collected for the assertion
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 4
    for r in results:
        np.testing.assert_array_equal(r, want)


@pytest.mark.parametrize("kind", ["three_outputs", "nchw", "not_onnx", "empty", "missing"])
def test_bad_models_raise_model_error(tmp_path, kind):
    path = tmp_path / "bad.onnx"
    if kind == "three_outputs":
        build_onnx(path, outputs=3)
    elif kind == "nchw":
        build_onnx(path, layout="NCHW")
    elif kind == "not_onnx":
        path.write_text("this is a text file, not a protobuf\n" * 20)
    elif kind == "empty":
        path.write_bytes(b"")
    with pytest.raises(ModelError) as info:
        Predictor.from_path(path)
    msg = str(info.value)
    assert {"three_outputs": "3", "nchw": "NCHW", "not_onnx": "not a usable ONNX",
            "empty": "not a usable ONNX", "missing": "not found"}[kind] in msg


def test_devices(model):
    with pytest.raises(DeviceError):
        Predictor.from_path(model, device="tpu")
    auto = Predictor.from_path(model, device="auto")
    assert auto.provider in ort.get_available_providers()
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has a CUDA provider: the no-GPU error cannot be shown")
    with pytest.raises(DeviceError, match="CUDAExecutionProvider"):
        Predictor.from_path(model, device="gpu")
    assert auto.provider == "CPUExecutionProvider"


def test_threads_and_close(model):
    with Predictor.from_path(model, threads=1) as p:
        assert p.predict(solid(RED))[0].label == "red"
        assert "Predictor(" in repr(p)
    with pytest.raises(ModelError, match="closed"):
        p.predict(solid(RED))


@pytest.mark.parametrize("kind", ["text", "empty", "truncated", "one_pixel", "bomb", "missing",
                                  "rgba", "cmyk", "png16", "palette"])
def test_bad_and_awkward_files_through_the_predictor(predictor, tmp_path, kind):
    from tests.fixtures.bad_images import unusable_image

    usable = {"rgba": ("RGBA", (250, 0, 0, 255), "png"), "cmyk": ("CMYK", (0, 255, 255, 0), "jpg"),
              "palette": ("P", None, "png"), "png16": ("I;16", None, "png")}
    if kind in usable:
        mode, color, ext = usable[kind]
        path = tmp_path / f"x.{ext}"
        if mode == "P":
            Image.fromarray(solid(BLUE)).convert("P").save(path)
        elif mode == "I;16":
            Image.fromarray(np.full((30, 40), 50000, np.uint16)).save(path)
        else:
            Image.new(mode, (40, 30), color).save(path)
        if kind == "png16":  # 50000 / 257 = 194.6: the same as an 8-bit grey of 195
            np.testing.assert_allclose(predictor.predict_proba(path),
                                       predictor.predict_proba(np.full((30, 40), 195, np.uint8)),
                                       atol=1e-3)
            return
        pred = predictor.predict(path)[0]
        assert pred.ok and pred.label == {"rgba": "red", "cmyk": "red", "palette": "blue"}[kind]
        return
    path = unusable_image(tmp_path, kind)
    with pytest.raises(ImageError) as info:
        predictor.predict(path)
    assert str(path) in str(info.value)
    (pred,) = predictor.predict(path, strict=False)
    assert not pred.ok and pred.source == str(path)


def _conv_model(path):
    """A model with enough work per run for onnxruntime to hand it to its thread pool."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).normal(
        0, 0.1, (64, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Transpose", ["image"], ["t"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["t", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["c", "w2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("ReduceMean", ["c2"], ["probs"], axes=[2, 3], keepdims=0)]
    w2 = numpy_helper.from_array(np.random.default_rng(1).normal(
        0, 0.1, (3, 64, 3, 3)).astype(np.float32), "w2")
    graph = helper.make_graph(
        nodes, "conv", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                      ["N", 160, 160, 3])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 3])], [w, w2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx_path = path / "conv.onnx"
    onnx_path.write_bytes(model.SerializeToString())
    return onnx_path


@pytest.mark.parametrize("config, spinning", [
    (None, "0"),                                              # the default: never spin
    ({"session.intra_op.allow_spinning": "1"}, "1"),          # spin within a run only
])
def test_onnx_threads_burn_no_cpu_when_idle(tmp_path, config, spinning):
    """An embedded predictor must not burn its host's CPU between requests: onnxruntime's
    own default keeps intra-op threads spinning ~50 ms after every run."""
    import time

    from edgeclf.runtime._onnx import OnnxBackend

    backend = OnnxBackend(_conv_model(tmp_path), threads=2, session_config=config)
    so = backend.session.get_session_options()
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == spinning
    pixels = np.random.default_rng(2).integers(0, 256, (4, 160, 160, 3), dtype=np.uint8)
    for _ in range(5):
        backend._run(pixels)
    idle_from = time.process_time()
    time.sleep(0.3)
    assert time.process_time() - idle_from < 0.02


def test_session_config_reaches_the_session_through_from_path(model):
    p = Predictor.from_path(model, threads=1,
                            session_config={"session.dynamic_block_base": "4"})
    so = p.session.get_session_options()
    assert so.get_session_config_entry("session.dynamic_block_base") == "4"
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
