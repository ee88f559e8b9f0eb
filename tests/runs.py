"""Build a small *trained* run directory by hand, for tests of export, parity and bench.

``make_trained_run(tmp_path, backbone="mobilenetv2")`` writes a run that follows
DESIGN.md: ``run.json``, ``labels.txt``, ``split.json``, ``checkpoints/best.keras`` and
``checkpoints/last.keras``. The model follows the model contract (input ``image`` float32
(None, H, W, 3) holding 0..255 RGB, normalisation as built-in Keras layers inside the
model, float32 softmax output) and is trained a few steps so that its outputs are far from
uniform (an untrained softmax hides conversion errors).

Images come from ``data_dir`` (a folder with one sub-folder per class, e.g.
``../shared/data/flowers``; a few images per class are used) or, without it, from a
generated shapes dataset.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from edgeclf import __version__  # noqa: E402
from edgeclf.data.split import Split  # noqa: E402
from edgeclf.export.utils import _all_layers  # noqa: E402
from edgeclf.run import RunPaths  # noqa: E402
from edgeclf.runtime.contract import Contract  # noqa: E402
from edgeclf.runtime.preprocess import preprocess_batch  # noqa: E402

BACKBONES = ("tiny", "mobilenetv2", "efficientnet", "resnet", "vgg")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass(frozen=True)
class TrainedRun:
    """What :func:`make_trained_run` made: the run, its classes and a few sample images."""

    paths: RunPaths
    classes: list[str]
    contract: Contract
    images: np.ndarray          # (n, H, W, 3) uint8: the preprocessed training images
    labels: np.ndarray          # (n,) int
    files: list[Path]           # the source files of ``images``

    @property
    def root(self) -> Path:
        return self.paths.root


def build_model(backbone: str, image_size: int, n_classes: int, *, seed: int = 0):
    """A small ``weights=None`` classifier that follows the model contract."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    shape = (image_size, image_size, 3)
    inputs = keras.Input(shape=shape, name="image", dtype="float32")
    if backbone == "tiny":   # seconds to build and convert: for error-path tests
        x = layers.Rescaling(1 / 127.5, offset=-1.0, name="normalise")(inputs)
        base = keras.Sequential([
            layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False),
            layers.BatchNormalization(), layers.ReLU(6.0),
            layers.DepthwiseConv2D(3, padding="same"), layers.Conv2D(16, 1),
            layers.BatchNormalization(), layers.ReLU()], name="tiny_backbone")
    elif backbone == "mobilenetv2":
        x = layers.Rescaling(1 / 127.5, offset=-1.0, name="normalise")(inputs)
        base = keras.applications.MobileNetV2(input_shape=shape, alpha=0.35,
                                              include_top=False, weights=None)
    elif backbone == "efficientnet":   # normalisation is built into EfficientNet
        x = inputs
        base = keras.applications.EfficientNetB0(input_shape=shape, include_top=False,
                                                 weights=None)
    elif backbone == "resnet":
        x = layers.Rescaling(1 / 127.5, offset=-1.0, name="normalise")(inputs)
        base = keras.applications.ResNet50V2(input_shape=shape, include_top=False,
                                             weights=None)
    elif backbone == "vgg":
        x = layers.Rescaling(1 / 127.5, offset=-1.0, name="normalise")(inputs)
        base = keras.applications.VGG16(input_shape=shape, include_top=False, weights=None)
    else:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
    x = base(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(n_classes, activation="softmax", dtype="float32",
                           name="probabilities")(x)
    return keras.Model(inputs, outputs, name=f"edgeclf_{backbone}")


def _pick_files(data_dir: Path, per_class: int) -> tuple[list[str], list[str]]:
    classes = sorted(d.name for d in data_dir.iterdir()
                     if d.is_dir() and not d.name.startswith("."))
    rel: list[str] = []
    for c in classes:
        files = sorted(f for f in (data_dir / c).iterdir()
                       if f.suffix.lower() in IMAGE_SUFFIXES)
        rel += [f"{c}/{f.name}" for f in files[:per_class]]
    return classes, rel


def _split(root: Path, classes: list[str], rel: list[str]) -> Split:
    """Every fourth image of a class goes to test, every fourth+1 to val, the rest train."""
    out: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for c in classes:
        mine = [p for p in rel if p.split("/", 1)[0] == c]
        for i, p in enumerate(mine):
            out["test" if i % 4 == 0 else "val" if i % 4 == 1 else "train"].append(p)
    return Split(root=root, classes=classes, **out)


def _train(model, x: np.ndarray, y: np.ndarray, *, epochs: int, seed: int) -> None:
    """Train briefly. BatchNorm moving statistics follow the batches quickly (momentum
    0.5 while training, restored afterwards) so inference mode matches training mode after
    only a few steps and the outputs are confident, not near-uniform."""
    import keras

    keras.utils.set_random_seed(seed)
    norms = [l for l in _all_layers(model) if isinstance(l, keras.layers.BatchNormalization)]
    saved = [bn.momentum for bn in norms]
    for bn in norms:
        bn.momentum = 0.5
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy")
    model.fit(x.astype("float32"), y, batch_size=16, epochs=epochs, verbose=0, shuffle=True)
    for bn, momentum in zip(norms, saved):
        bn.momentum = momentum


def write_run_files(paths: RunPaths, *, backbone: str, contract: Contract,
                    classes: list[str], split: Split) -> None:
    """``run.json``, ``labels.txt`` and ``split.json`` as the training stage writes them."""
    import keras
    import tensorflow as tf

    paths.root.mkdir(parents=True, exist_ok=True)
    run = {"name": paths.root.name, "edgeclf_version": __version__,
           "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
           "backend": "tensorflow", "backbone": backbone, "image_size": contract.height,
           "preprocessing": contract.to_dict(), "classes": classes,
           "dataset": {"root": str(split.root), "fingerprint": ""},
           "config": {"made_by": "tests/runs.py"},
           "versions": {"keras": keras.__version__, "tensorflow": tf.__version__}}
    paths.run_json.write_text(json.dumps(run, indent=2))
    paths.labels.write_text("\n".join(classes) + "\n")
    split.write(paths.split)


def make_trained_run(tmp_path: str | Path, backbone: str = "mobilenetv2", image_size: int = 32,
                     data_dir: str | Path | None = None, *, per_class: int = 12,
                     epochs: int = 8, seed: int = 0, name: str | None = None) -> TrainedRun:
    """Make ``tmp_path/<name>``: a run of a small ``backbone`` trained ``epochs`` epochs.

    With ``data_dir`` the first ``per_class`` images of each class are used; without it a
    5-class shapes dataset is generated under ``tmp_path``.
    """
    tmp_path = Path(tmp_path)
    if data_dir is None:
        from edgeclf.data.synthetic import make_shapes_dataset

        data_dir = make_shapes_dataset(tmp_path / "shapes-data", per_class=per_class,
                                       size=max(image_size, 48), seed=seed)
    data_dir = Path(data_dir)
    classes, rel = _pick_files(data_dir, per_class)
    split = _split(data_dir, classes, rel)
    contract = Contract(size=(image_size, image_size))
    files = [data_dir / p for p in split.train + split.val]
    batch = preprocess_batch(files, contract)
    if batch.errors:
        raise ValueError(f"unreadable test images: {batch.errors[:3]}")
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[f.parent.name] for f in files])
    model = build_model(backbone, image_size, len(classes), seed=seed)
    _train(model, batch.array, y, epochs=epochs, seed=seed)
    paths = RunPaths(tmp_path / (name or f"run-{backbone}-{image_size}"))
    write_run_files(paths, backbone=backbone, contract=contract, classes=classes, split=split)
    paths.checkpoints.mkdir(parents=True, exist_ok=True)
    model.save(paths.best)
    shutil.copyfile(paths.best, paths.last)
    return TrainedRun(paths=paths, classes=classes, contract=contract, images=batch.array,
                      labels=y, files=files)
