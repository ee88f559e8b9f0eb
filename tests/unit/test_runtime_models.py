"""Tiny ONNX classifiers built with onnx.helper (no TensorFlow), for the runtime's tests.

The model follows the edgeclf contract: input ``image`` (N, H, W, 3) holding 0..255 RGB,
output ``probs`` (N, C). It averages each colour channel and applies a dense layer, so its
expected output is easy to compute with numpy (:func:`expected`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgeclf.runtime import Contract  # noqa: E402
from edgeclf.runtime.manifest import sha256_file  # noqa: E402
from edgeclf.runtime.metadata import build_metadata, onnx_props  # noqa: E402

CLASSES = ["red", "green", "blue"]
SIZE = (16, 20)
# Weights that make the class follow the dominant colour channel (inputs are 0..255).
WEIGHTS = np.array([[0.05, -0.02, -0.02], [-0.02, 0.05, -0.02], [-0.02, -0.02, 0.05]],
                   np.float32)
BIAS = np.array([0.1, 0.0, -0.1], np.float32)
_ONNX_DTYPES = {"float32": TensorProto.FLOAT, "uint8": TensorProto.UINT8,
                "int8": TensorProto.INT8}


def build_onnx(path: Path, *, size=SIZE, softmax: bool = True, outputs: int = 1,
               input_dtype: str = "float32", batch: int | str = "N", layout: str = "NHWC",
               labels: list[str] | None = CLASSES, contract: Contract | None = None) -> Path:
    """Write a tiny classifier; ``labels=None`` leaves out the edgeclf metadata."""
    h, w = size
    shape = [batch, h, w, 3] if layout == "NHWC" else [batch, 3, h, w]
    axes = [1, 2] if layout == "NHWC" else [2, 3]
    nodes, x = [], "image"
    if input_dtype != "float32":
        nodes.append(helper.make_node("Cast", ["image"], ["xf"], to=TensorProto.FLOAT))
        x = "xf"
        if input_dtype == "int8":  # the model undoes the runtime's pixel - 128
            nodes.append(helper.make_node("Add", ["xf", "shift"], ["xs"]))
            x = "xs"
    nodes += [helper.make_node("ReduceMean", [x], ["mean"], axes=axes, keepdims=0),
              helper.make_node("MatMul", ["mean", "W"], ["mm"]),
              helper.make_node("Add", ["mm", "B"], ["logits"])]
    out = "logits"
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], axis=1))
        out = "probs"
    n_cls = WEIGHTS.shape[1]
    outs = [helper.make_tensor_value_info(out, TensorProto.FLOAT, [batch, n_cls])]
    for i in range(1, outputs):
        nodes.append(helper.make_node("Identity", [out], [f"extra{i}"]))
        outs.append(helper.make_tensor_value_info(f"extra{i}", TensorProto.FLOAT, [batch, n_cls]))
    inits = [numpy_helper.from_array(WEIGHTS, "W"), numpy_helper.from_array(BIAS, "B"),
             numpy_helper.from_array(np.array(128.0, np.float32), "shift")]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("image", _ONNX_DTYPES[input_dtype], shape)],
        outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="edgeclf-tests")
    model.ir_version = 8
    if labels is not None:
        meta = build_metadata(labels, contract or Contract(size=size))
        helper.set_model_props(model, onnx_props(meta))
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path


def expected(batch: np.ndarray, *, softmax: bool = True) -> np.ndarray:
    """What :func:`build_onnx`'s model returns for a uint8 (N, H, W, 3) batch."""
    logits = batch.astype(np.float64).mean(axis=(1, 2)) @ WEIGHTS + BIAS
    if not softmax:
        return logits
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def write_manifest(export_dir: Path, artifacts: list[tuple[str, str, str]],
                   labels=CLASSES, contract: Contract | None = None) -> Path:
    """An export manifest for files already in ``export_dir``: (file, format, quantization)."""
    entries = [{"file": f, "format": fmt, "quantization": q,
                "bytes": (export_dir / f).stat().st_size, "sha256": sha256_file(export_dir / f),
                "inputs": [{"name": "image", "shape": [None, *SIZE, 3], "dtype": "float32",
                            "scale": 0.0, "zero_point": 0}], "outputs": []}
               for f, fmt, q in artifacts]
    manifest = {"labels": list(labels), "preprocessing": (contract or Contract(size=SIZE)).to_dict(),
                "checkpoint": {"file": "best.keras", "sha256": ""}, "artifacts": entries}
    (export_dir / "manifest.json").write_text(json.dumps(manifest))
    return export_dir / "manifest.json"


def solid(color, size=(40, 30)) -> np.ndarray:
    """A uint8 HxWx3 image of one colour (with a little noise)."""
    rng = np.random.default_rng(sum(color))
    img = np.clip(np.array(color, np.int16) + rng.integers(-10, 10, (size[1], size[0], 3)), 0, 255)
    return img.astype(np.uint8)


def test_built_model_matches_expected(tmp_path):
    import onnxruntime as ort

    path = build_onnx(tmp_path / "m.onnx")
    x = np.stack([solid((250, 10, 10), (20, 16)), solid((10, 10, 250), (20, 16))])
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"image": x.astype(np.float32)})
    np.testing.assert_allclose(y, expected(x), rtol=1e-5, atol=1e-6)
    assert y.argmax(axis=1).tolist() == [0, 2]
