"""int8 TFLite activation ranges: measured without buffer reuse, inner activations clipped
to a percentile, the input and its rescaling kept exact."""

from __future__ import annotations

import numpy as np
import pytest

from edgeclf.export.tflite_int8 import BINS, percentile_range, quantize_int8


def _histogram(values, lo, hi):
    bins = ((values - lo) * (BINS / (hi - lo))).astype(np.int64)
    return np.bincount(np.clip(bins, 0, BINS - 1), minlength=BINS)


def test_percentile_range_drops_a_rare_outlier():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.uniform(0, 6, 200_000), [60.0]])
    lo, hi = percentile_range(_histogram(values, 0, 60), 0, 60, 0.0, 60.0, 99.999)
    assert lo == 0.0 and 5.9 < hi < 6.2


def test_percentile_range_of_a_signed_tensor_keeps_zero_and_stays_inside_the_truth():
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(0, 1, 500_000), [-40.0, 35.0]])
    lo, hi = percentile_range(_histogram(values, -40, 35), -40, 35, -40.0, 35.0, 99.999)
    assert -6 < lo < -3 and 3 < hi < 6
    # never wider than the true range, and zero stays representable
    values = rng.uniform(1.5, 2.5, 100_000)
    lo, hi = percentile_range(_histogram(values, 0, 4), 0, 4, 1.5, 2.5, 99.9)
    assert lo == 1.5 and 2.45 < hi <= 2.5
    lo, hi = percentile_range(_histogram(np.full(1000, -2.0), -4, 0), -4, 0, -2.5, -1.5, 99.9)
    assert -2.5 <= lo <= -2.0 and hi == 0.0


def test_empty_histogram_keeps_the_true_range():
    assert percentile_range(np.zeros(BINS, np.int64), 0, 1, 0.2, 0.7, 99.9) == (0.2, 0.7)


@pytest.fixture(scope="module")
def residual_saved_model(tmp_path_factory):
    """A small model with the two in-place patterns: an input rescaling (MUL then ADD)
    and a residual ADD."""
    keras = pytest.importorskip("keras")
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="rescale")(inp)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu6")(x)
    y = keras.layers.Conv2D(8, 1)(x)
    x = keras.layers.Add()([x, y])
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inp, out)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([rng.normal(0, 0.5, w.shape).astype("float32")
                               for w in layer.get_weights()])
    path = tmp_path_factory.mktemp("int8") / "saved_model"
    model.export(str(path), format="tf_saved_model", verbose=False)
    images = rng.integers(0, 256, (24, 16, 16, 3)).astype(np.float32)
    images[0, 0, 0] = 0
    images[0, 1, 1] = 255
    return path, images, model


def _converter(path, images):
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(path))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([images[i:i + 1]] for i in range(len(images)))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.uint8
    return converter


def test_int8_model_keeps_every_input_level_through_the_rescaling(residual_saved_model):
    import tensorflow as tf

    from edgeclf.export.tflite import interpreter_class

    path, images, model = residual_saved_model
    flatbuffer, record = quantize_int8(_converter(path, images), images, tf.uint8)
    assert record["method"] == "minmax-unshared-buffers+percentile"
    assert record["tensors"] > 0
    interp = interpreter_class()(model_content=flatbuffer)
    interp.allocate_tensors()
    details = interp.get_tensor_details()
    assert all(np.dtype(d["dtype"]) in (np.int8, np.uint8, np.int32) for d in details)
    # x / 127.5 spans [0, 2]: 256 input levels need scale 2/255 there, not a wider range
    mul = [d for d in details if d["name"].endswith("rescale_1/mul")
           or d["name"].endswith("rescale/mul")]
    assert mul, [d["name"] for d in details][:10]
    scale, _ = mul[0]["quantization"]
    assert scale == pytest.approx(2 / 255, rel=1e-3)
    # and the model still computes what the float model computes
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    agree = 0
    expected = np.asarray(model(images))
    for i in range(len(images)):
        interp.set_tensor(inp["index"], images[i:i + 1].astype(np.uint8))
        interp.invoke()
        scale, zero = out["quantization"]
        probs = (interp.get_tensor(out["index"]).astype(np.float32) - zero) * scale
        assert np.abs(probs - expected[i]).max() < 0.1
        agree += int(probs.argmax() == expected[i].argmax())
    assert agree >= len(images) - 2


def test_without_the_calibrate_only_pass_the_plain_converter_runs(residual_saved_model,
                                                                   monkeypatch, caplog):
    import tensorflow as tf
    from tensorflow.lite.python import convert

    path, images, _ = residual_saved_model
    monkeypatch.delattr(convert, "mlir_quantize")
    flatbuffer, record = quantize_int8(_converter(path, images), images, tf.uint8)
    assert record == {"method": "converter-minmax"} and len(flatbuffer) > 1000
    assert "calibrate-only" in caplog.text


def _mean_errors(quantized: bytes, reference: bytes, images) -> np.ndarray:
    """Mean per-channel error of every biased layer's output, int8 vs float."""
    from tensorflow.lite.tools import flatbuffer_utils

    from edgeclf.export.tflite_int8 import _BIASED_OPS, _op_names, _run_all

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(quantized))
    graph, names = model.subgraphs[0], _op_names(model)
    ref = flatbuffer_utils.convert_bytearray_to_object(bytearray(reference))
    ref_index = {t.name: i for i, t in enumerate(ref.subgraphs[0].tensors)}
    outs = [int(op.outputs[0]) for op in graph.operators if names[op.opcodeIndex] in _BIASED_OPS]
    got = _run_all(quantized, images.astype(np.uint8), outs, np.uint8)
    errors = []
    for i in outs:
        q = graph.tensors[i].quantization
        want = _run_all(reference, images, [ref_index[graph.tensors[i].name]], np.float32)
        deq = (np.concatenate(got[i]).astype(np.float64) - q.zeroPoint[0]) * q.scale[0]
        diff = deq - np.concatenate(next(iter(want.values())))
        errors.append(np.abs(diff.reshape(-1, diff.shape[-1]).mean(axis=0)).mean())
    return np.array(errors)


def test_bias_correction_removes_the_mean_error_of_every_layer(residual_saved_model):
    import tensorflow as tf
    from tensorflow.lite.python.convert import mlir_quantize

    from edgeclf.export.tflite_int8 import correct_biases, measure_ranges

    path, images, _ = residual_saved_model
    converter = _converter(path, images)
    converter._experimental_calibrate_only = True
    calibrated, _ = measure_ranges(converter.convert(), (images[i:i + 1] for i in
                                                         range(len(images))))
    quantized = bytes(mlir_quantize(calibrated, disable_per_channel=False,
                                    input_data_type=tf.uint8, output_data_type=tf.uint8))
    corrected, layers = correct_biases(quantized, calibrated, images, tf.uint8)
    assert layers == 3                      # two convolutions and the classifier
    before = _mean_errors(quantized, calibrated, images)
    after = _mean_errors(corrected, calibrated, images)
    assert after.sum() < 0.5 * before.sum(), (before, after)
