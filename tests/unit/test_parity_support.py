"""A small trained and exported run for the parity/eval tests (no tests in this module).

The run follows DESIGN.md: a tiny CNN (normalisation as a built-in ``Rescaling`` layer,
softmax output) trained on a generated shapes dataset until its outputs are far from
uniform, a float32 ONNX (dynamic batch) and a float32 TFLite (fixed batch 1) artifact with
edgeclf metadata, and ``export/manifest.json`` with their sha256. ``export_onnx`` can also
write a *broken* copy: same weights, wrong normalisation.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from edgeclf.run import RunPaths  # noqa: E402
from edgeclf.runtime.contract import Contract  # noqa: E402
from edgeclf.runtime.manifest import sha256_file  # noqa: E402
from edgeclf.runtime.metadata import build_metadata, embed_tflite, onnx_props  # noqa: E402
from edgeclf.runtime.preprocess import preprocess_batch  # noqa: E402

SIZE = 32
PER_CLASS = 24
EPOCHS = 40
_CACHE: dict[str, "ExportedRun"] = {}


@dataclass(frozen=True)
class ExportedRun:
    paths: RunPaths
    classes: list[str]
    contract: Contract
    data_dir: Path

    @property
    def root(self) -> Path:
        return self.paths.root


def build_model(n_classes: int, *, scale: float = 1 / 127.5, offset: float = -1.0, seed: int = 0,
                batch_size: int | None = None):
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(SIZE, SIZE, 3), name="image", dtype="float32",
                         batch_size=batch_size)
    x = layers.Rescaling(scale, offset=offset, name="normalise")(inputs)
    x = layers.Conv2D(12, 3, strides=2, activation="relu", name="conv1")(x)
    x = layers.Conv2D(24, 3, strides=2, activation="relu", name="conv2")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(n_classes, activation="softmax", dtype="float32",
                           name="probabilities")(x)
    return keras.Model(inputs, outputs, name="tiny")


def make_exported_run(base: Path, name: str = "tiny", data_dir: Path | None = None,
                      per_class: int = PER_CLASS) -> ExportedRun:
    """Train (a few epochs, seconds) and export; cached per process under ``base``.

    Images: the first ``per_class`` of each class of ``data_dir`` (real data), else a
    generated shapes dataset."""
    key = f"{name}:{data_dir}"   # one per test session, whichever module asks first
    if key in _CACHE:
        return _CACHE[key]
    import keras

    from edgeclf.data.synthetic import make_shapes_dataset
    from tests.runs import _split, write_run_files

    data = data_dir or make_shapes_dataset(base / f"{name}-data", per_class=per_class,
                                           size=48, seed=1)
    classes = sorted(d.name for d in data.iterdir() if d.is_dir())
    rel = [f"{c}/{f.name}" for c in classes
           for f in sorted((data / c).iterdir())[:per_class]]
    split = _split(data, classes, rel)
    contract = Contract(size=(SIZE, SIZE))
    train = preprocess_batch([data / p for p in split.train + split.val], contract)
    y = np.array([classes.index(p.split("/")[0]) for p in split.train + split.val])
    model = build_model(len(classes))
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(train.array.astype("float32"), y, batch_size=16, epochs=EPOCHS, verbose=0)
    paths = RunPaths(base / name)
    write_run_files(paths, backbone="tiny", contract=contract, classes=classes, split=split)
    paths.checkpoints.mkdir(parents=True, exist_ok=True)
    model.save(paths.best)
    shutil.copy(paths.best, paths.last)
    meta = build_metadata(classes, contract, checkpoint_sha256=sha256_file(paths.best))
    paths.export_dir.mkdir(parents=True, exist_ok=True)
    entries = [export_onnx(model, paths.export_dir / "model.onnx", meta),
               export_tflite(model, paths.export_dir / "model.tflite", meta),
               export_savedmodel(model, paths.export_dir / "saved_model", meta)]
    write_manifest(paths, classes, contract, entries)
    run = ExportedRun(paths=paths, classes=classes, contract=contract, data_dir=data)
    _CACHE[key] = run
    return run


def export_onnx(model, path: Path, meta: dict) -> dict:
    """Float32 ONNX with a dynamic batch and edgeclf metadata; returns its manifest entry."""
    import onnx

    model(np.zeros((1, SIZE, SIZE, 3), np.float32))  # Keras refuses a never-called model
    model.export(str(path), format="onnx", verbose=False)
    proto = onnx.load(str(path))
    onnx.helper.set_model_props(proto, onnx_props(meta))
    onnx.save(proto, str(path))
    return entry(path, "onnx", "none")


def export_savedmodel(model, path: Path, meta: dict) -> dict:
    from edgeclf.runtime.metadata import write_savedmodel_assets

    model.export(str(path), format="tf_saved_model", verbose=False)
    write_savedmodel_assets(path, meta)
    return entry(path, "savedmodel", "none")


def export_tflite(model, path: Path, meta: dict) -> dict:
    import tensorflow as tf

    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    embed_tflite(path, meta)
    return entry(path, "tflite", "none")


def entry(path: Path, fmt: str, quantization: str) -> dict:
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) \
        if path.is_dir() else path.stat().st_size
    return {"file": path.name, "format": fmt, "quantization": quantization,
            "bytes": size, "sha256": sha256_file(path)}


def write_manifest(paths: RunPaths, classes: list[str], contract: Contract,
                   entries: list[dict]) -> None:
    manifest = {"labels": classes, "preprocessing": contract.to_dict(),
                "checkpoint": {"file": "checkpoints/best.keras",
                               "sha256": sha256_file(paths.best)},
                "artifacts": entries}
    paths.manifest.write_text(json.dumps(manifest, indent=2))


def copy_run(run: ExportedRun, dest: Path, *, data: bool = False) -> ExportedRun:
    """A private copy (tests that damage a run must not touch the shared one); with
    ``data`` the images too, and the copy's split.json points at them."""
    shutil.copytree(run.root, dest / run.root.name)
    paths, data_dir = RunPaths(dest / run.root.name), run.data_dir
    if data:   # only the images the split lists
        data_dir = dest / "data"
        split = json.loads(paths.split.read_text())
        for rel in split["train"] + split["val"] + split["test"]:
            (data_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(run.data_dir / rel, data_dir / rel)
        split["root"] = str(data_dir)
        paths.split.write_text(json.dumps(split))
    return ExportedRun(paths=paths, classes=run.classes, contract=run.contract,
                       data_dir=data_dir)


def add_broken_onnx(run: ExportedRun, file: str = "broken.onnx") -> Path:
    """The same weights with the wrong normalisation (0..1 instead of -1..1), added to the
    manifest with a correct sha256: only a check on real outputs can catch it."""
    import keras

    good = keras.saving.load_model(run.paths.best, safe_mode=True, compile=False)
    bad = build_model(len(run.classes), scale=1 / 255.0, offset=0.0)
    bad.set_weights(good.get_weights())
    meta = build_metadata(run.classes, run.contract)
    e = export_onnx(bad, run.paths.export_dir / file, meta)
    manifest = json.loads(run.paths.manifest.read_text())
    manifest["artifacts"].append(e)
    run.paths.manifest.write_text(json.dumps(manifest, indent=2))
    return run.paths.export_dir / file
