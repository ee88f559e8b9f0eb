"""Tiny fixtures for the bench tests: an ONNX classifier built with onnx.helper (no
TensorFlow), and a run directory whose manifest lists it, a tampered copy and a broken file.

Imported by tests/unit/test_bench.py and tests/cli/test_bench_cmd.py; holds no tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgeclf.runtime.contract import Contract
from edgeclf.runtime.manifest import sha256_file
from edgeclf.runtime.metadata import build_metadata, onnx_props

LABELS = ["a", "b", "c", "d"]
SIZE = 16


def make_onnx(path: Path, *, size: int = SIZE, labels: list[str] = LABELS) -> Path:
    """image (N, size, size, 3) float32 0..255 -> mean colour -> dense -> softmax."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).normal(size=(3, len(labels))).astype(np.float32) / 100
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["image"], ["pooled"], axes=[1, 2], keepdims=0),
         helper.make_node("MatMul", ["pooled", "w"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)],
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", size, size, 3])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", len(labels)])],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = build_metadata(labels, Contract(size=(size, size)), version="test")
    for k, v in onnx_props(meta).items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, path)
    return path


def _entry(export: Path, name: str, fmt: str, quant: str) -> dict:
    f = export / name
    return {"file": name, "format": fmt, "quantization": quant, "bytes": f.stat().st_size,
            "sha256": sha256_file(f)}


def make_bench_run(root: Path) -> Path:
    """A run with three ONNX artifacts: one good, one changed after export, one broken."""
    run = root / "tiny-run"
    export = run / "export"
    export.mkdir(parents=True)
    contract = Contract(size=(SIZE, SIZE))
    (run / "run.json").write_text(json.dumps({"name": "tiny-run",
                                              "preprocessing": contract.to_dict(),
                                              "classes": LABELS}))
    (run / "labels.txt").write_text("\n".join(LABELS) + "\n")
    make_onnx(export / "model.onnx")
    make_onnx(export / "model_tampered.onnx")
    (export / "model_broken.onnx").write_bytes(b"this is not an onnx model")
    artifacts = [_entry(export, "model.onnx", "onnx", "none"),
                 _entry(export, "model_tampered.onnx", "onnx", "dynamic"),
                 _entry(export, "model_broken.onnx", "onnx", "float16")]
    (export / "model_tampered.onnx").write_bytes(
        (export / "model_tampered.onnx").read_bytes() + b"\0")
    manifest = {"labels": LABELS, "preprocessing": contract.to_dict(), "artifacts": artifacts}
    (export / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return run
