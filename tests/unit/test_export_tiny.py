"""Export on a tiny trained model: bad input gives clear typed errors and nothing
half-written; the CLI prints a table and the manifest holds what it says."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from edgeclf.errors import ConfigError, ExportError, ModelError, RunError
from edgeclf.export import FORMATS, ExportConfig, export_run
from edgeclf.runtime.manifest import load_manifest, verify_artifact


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from tests.fixtures.runs import make_trained_run

    return make_trained_run(tmp_path_factory.mktemp("tiny"), backbone="tiny", image_size=32,
                            per_class=8, epochs=6)


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(tiny_run.root, dst)
    return dst


def test_run_without_checkpoint(run_copy):
    shutil.rmtree(run_copy / "checkpoints")
    with pytest.raises(RunError, match="no checkpoint"):
        export_run(run_copy, ExportConfig(formats=("onnx",)))
    assert not (run_copy / "export").exists()


def test_not_a_run_directory(tmp_path):
    with pytest.raises(RunError, match="not"):
        export_run(tmp_path / "nowhere")


def test_checkpoint_that_is_not_a_keras_model(run_copy):
    (run_copy / "checkpoints" / "best.keras").write_text("these are not weights")
    with pytest.raises(ModelError, match="not a Keras"):
        export_run(run_copy)
    assert not (run_copy / "export" / "model.onnx").exists()


def test_checkpoint_with_a_lambda_layer_is_refused_without_running_it(run_copy, tmp_path):
    import keras

    marker = tmp_path / "code-ran"

    def side_effect(x):
        marker.write_text("the model file ran code")
        return x

    inputs = keras.Input((32, 32, 3), name="image")
    x = keras.layers.Lambda(side_effect)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(5, activation="softmax")(x))
    model.save(run_copy / "checkpoints" / "best.keras")
    marker.unlink(missing_ok=True)   # building the model called it once
    with pytest.raises(ModelError, match="Lambda"):
        export_run(run_copy)
    assert not marker.exists()


def test_unwritable_output_directory(run_copy):
    (run_copy / "export").write_text("a file where the export directory should be")
    with pytest.raises(ExportError, match="cannot write to the export directory"):
        export_run(run_copy)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only directories")
def test_read_only_output_directory(run_copy):
    (run_copy / "export").mkdir()
    (run_copy / "export").chmod(0o500)
    try:
        with pytest.raises(ExportError, match="cannot write"):
            export_run(run_copy)
    finally:
        (run_copy / "export").chmod(0o700)


@pytest.mark.parametrize("formats,quants", [(("savedmodel",), ("int8",)),
                                            (("onnx",), ("int16",)), (("caffe",), ("none",))])
def test_unknown_combination_fails_before_writing(run_copy, formats, quants):
    with pytest.raises(ConfigError):
        export_run(run_copy, ExportConfig(formats=formats, quantizations=quants))
    assert not (run_copy / "export").exists()


@pytest.mark.parametrize("option,match", [({"opset": 7}, "--opset"),
                                           ({"int8_io": "float64"}, "--int8-io"),
                                           ({"onnx_int8": "s8s8"}, "--onnx-int8"),
                                           ({"calibration_size": 0}, "--calibration-size")])
def test_bad_option_values_fail_before_writing(run_copy, option, match):
    with pytest.raises(ConfigError, match=match):
        export_run(run_copy, ExportConfig(formats=("tflite",), **option))
    assert not (run_copy / "export").exists()


def test_export_killed_half_way_leaves_nothing_that_looks_finished(run_copy, monkeypatch):
    from edgeclf import export as export_pkg

    def dies_half_way(ctx, path, quantization):
        path.write_bytes(b"\x08\x07 half an onnx model")
        raise KeyboardInterrupt   # what Ctrl-C or a dying converter looks like

    spec = export_pkg.FORMATS["onnx"]
    monkeypatch.setitem(export_pkg.FORMATS, "onnx",
                        type(spec)(**{**spec.__dict__, "export": dies_half_way}))
    with pytest.raises(KeyboardInterrupt):
        export_run(run_copy, ExportConfig(formats=("onnx",)))
    export_dir = run_copy / "export"
    assert not (export_dir / "model.onnx").exists()
    assert not (export_dir / "manifest.json").exists()
    assert [p.name for p in export_dir.iterdir() if "partial" in p.name] == []
    assert not (run_copy / ".lock").exists()


def test_mixed_precision_checkpoint_is_exported_in_float32(tmp_path):
    import keras

    from edgeclf.export.utils import as_float32

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        from tests.fixtures.runs import build_model

        model = build_model("tiny", 32, 3)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.layers[1].compute_dtype == "float16"
    path = tmp_path / "mixed.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    f32 = as_float32(loaded)
    x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype("float32")
    assert all(layer.compute_dtype == "float32" for layer in f32.layers)
    np.testing.assert_allclose(f32.predict(x, verbose=0), loaded.predict(x, verbose=0),
                               atol=5e-3)


@pytest.mark.parametrize("recipe,weights", [("u8s8", "INT8"), ("u8u8", "UINT8")])
def test_onnx_int8_recipe_is_honoured_and_recorded(run_copy, recipe, weights):
    import onnx
    from typer.testing import CliRunner

    from edgeclf.cli import app

    res = CliRunner().invoke(app, ["export", str(run_copy), "-f", "onnx", "-q", "int8",
                                   "--onnx-int8", recipe, "--calibration-size", "8"])
    assert res.exit_code == 0, res.output
    (entry,) = load_manifest(run_copy / "export")["artifacts"]
    q = entry["converter"]["onnx_quantization"]
    assert (q["recipe"], q["recipe_reason"]) == (recipe, "requested")
    assert q["weight_type"] == {"u8s8": "QInt8", "u8u8": "QUInt8"}[recipe]
    model = onnx.load(str(run_copy / "export" / entry["file"]))
    conv_weights = {n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"
                    and any(i.name == n.input[0] and len(i.dims) == 4
                            for i in model.graph.initializer)}
    types = {onnx.TensorProto.DataType.Name(i.data_type) for i in model.graph.initializer
             if i.name in conv_weights}
    assert conv_weights and types == {weights}


def test_cli_exports_onnx_and_records_it(run_copy):
    from typer.testing import CliRunner

    from edgeclf.cli import app

    res = CliRunner().invoke(app, ["export", str(run_copy), "--format", "onnx",
                                   "--opset", "17"])
    assert res.exit_code == 0, res.output
    assert "edgeclf parity" in res.output          # the next command
    manifest = load_manifest(run_copy / "export")
    (entry,) = manifest["artifacts"]
    assert (entry["format"], entry["quantization"], entry["file"]) == ("onnx", "none",
                                                                       "model.onnx")
    verify_artifact(run_copy / "export", entry)
    assert entry["inputs"][0] == {"name": "image", "shape": [None, 32, 32, 3],
                                  "dtype": "uint8"}       # the cast is inside the graph
    assert entry["outputs"][0]["name"] == "probabilities"
    assert entry["outputs"][0]["shape"] == [None, 5]
    labels = (run_copy / "export" / "labels.txt").read_text().split()
    assert labels == manifest["labels"] == (run_copy / "labels.txt").read_text().split()
    assert entry["converter"]["tf2onnx"] and entry["export_seconds"] > 0


@pytest.mark.parametrize("args,message,code", [
    (["--format", "savedmodel", "--quantize", "int8"], "does not support", 2),  # bad usage
    (["--format", "pytorch"], "unknown format", 2),
    (["--checkpoint", "missing.keras"], "neither best, last", 1),               # a failure
    (["--format", "web", "--ort-web", "/nowhere/ort.tgz"], "does not exist; on a machine "
     "with npm run `npm pack onnxruntime-web@", 1),
])
def test_cli_bad_input_is_an_error_line_and_exit_code(run_copy, args, message, code):
    from typer.testing import CliRunner

    from edgeclf.cli import app

    res = CliRunner().invoke(app, ["export", str(run_copy), *args])
    assert res.exit_code == code
    assert "Error:" in res.output and message in res.output.replace("\n", " ")
    assert not (run_copy / "export" / "web").exists()


def test_format_table_is_what_the_cli_accepts():
    from edgeclf.cli.export_cmd import FORMAT_HELP

    for name in FORMATS:
        assert name in FORMAT_HELP


def test_onnx_metadata_travels_in_the_model(run_copy):
    import onnx

    from edgeclf.runtime.metadata import from_onnx_props

    export_run(run_copy, ExportConfig(formats=("onnx",)))
    model = onnx.load(str(run_copy / "export" / "model.onnx"))
    meta = from_onnx_props({p.key: p.value for p in model.metadata_props})
    assert meta["labels"] == (run_copy / "labels.txt").read_text().split()
    run = json.loads((run_copy / "run.json").read_text())
    assert meta["preprocessing"] == run["preprocessing"]
    from edgeclf.runtime.manifest import sha256_file

    assert meta["checkpoint_sha256"] == sha256_file(run_copy / "checkpoints" / "best.keras")
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch


def test_one_failing_format_does_not_stop_the_others(run_copy, monkeypatch):
    from edgeclf import export as export_pkg

    def converter_bug(ctx, path, quantization):
        raise RuntimeError("converter exploded")

    spec = export_pkg.FORMATS["onnx"]
    monkeypatch.setitem(export_pkg.FORMATS, "onnx",
                        type(spec)(**{**spec.__dict__, "export": converter_bug}))
    result = export_run(run_copy, ExportConfig(formats=("onnx", "savedmodel")))
    status = {a.format: (a.status, a.message) for a in result.artifacts}
    assert status["onnx"] == ("failed", "unexpected RuntimeError: converter exploded")
    assert status["savedmodel"][0] == "ok" and not result.ok
    (entry,) = load_manifest(run_copy / "export")["artifacts"]
    assert entry["format"] == "savedmodel"
    assert entry["outputs"] == [{"name": "probabilities", "shape": [None, 5],
                                 "dtype": "float32"}]
    from edgeclf.runtime.metadata import read_savedmodel_assets

    assert read_savedmodel_assets(run_copy / "export" / "saved_model")["labels"] == \
        result_labels(run_copy)


def result_labels(run_dir) -> list[str]:
    return (run_dir / "labels.txt").read_text().split()


JAX_SAVE = """
import os, sys
os.environ["KERAS_BACKEND"] = "jax"
import keras, numpy as np
sys.path.insert(0, sys.argv[2])
from tests.fixtures.runs import build_model
assert keras.backend.backend() == "jax"
model = build_model("tiny", 32, 5, seed=1)
model.save(sys.argv[1])
x = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3)).astype("float32")
np.save(sys.argv[1] + ".x.npy", x)
np.save(sys.argv[1] + ".y.npy", np.asarray(model.predict(x, verbose=0)))
"""


def test_checkpoint_saved_under_jax_exports_under_tensorflow(run_copy, tmp_path):
    import subprocess
    import sys

    pytest.importorskip("jax")
    from pathlib import Path

    ckpt = tmp_path / "jax.keras"
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", JAX_SAVE, str(ckpt), str(root)], check=True,
                   env={**os.environ, "KERAS_BACKEND": "jax"}, capture_output=True)
    result = export_run(run_copy, ExportConfig(formats=("onnx",), checkpoint=str(ckpt)))
    assert result.ok
    import onnxruntime as ort

    sess = ort.InferenceSession(str(run_copy / "export" / "model.onnx"))
    x = np.load(str(ckpt) + ".x.npy")
    np.testing.assert_allclose(sess.run(None, {"image": x.astype(np.uint8)})[0],
                               np.load(str(ckpt) + ".y.npy"), atol=1e-5)
    entry = load_manifest(run_copy / "export")["artifacts"][0]
    assert entry["checkpoint"]["file"] == str(ckpt.resolve())
