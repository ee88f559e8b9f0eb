"""Fine-tuning that fits a CPU: the backbone is cut at a block boundary; the frozen part
below the cut runs once per image and view (the *cut cache*: a clean view, its mirror,
augmented views), and the layers above the cut train with the head on those activations,
BatchNorm statistics frozen. The layers are the full model's own objects, so training
them trains the one Keras model that is saved, exported and parity-checked.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from edgeclf.data import DecodeCache, cache_root
from edgeclf.data.augment import AugmentConfig
from edgeclf.data.loader import Batch, BatchLoader, LoaderStats
from edgeclf.errors import ConfigError
from edgeclf.fsutil import atomic_path, read_json, write_json

from .model import FEATURES, OUTPUT_NAME, backbones_of

log = logging.getLogger(__name__)

#: Where the cuts are placed, as fractions of the backbone's depth (deepest fine-tune
#: first): the nearest block boundary to each is a candidate.
CUT_DEPTHS = (0.7, 0.85, 0.95)
CUT_FORMAT = 1


def cut_candidates(backbone: Any) -> list[str]:
    """Layers of ``backbone`` whose output is the only tensor alive at that point and whose
    consumers are convolutions (block boundaries), nearest to :data:`CUT_DEPTHS`,
    deepest fine-tune (earliest cut) first."""
    layers = backbone.layers
    index = {layer.name: i for i, layer in enumerate(layers)}
    last_use: dict[str, int] = {}
    consumers: dict[str, list[Any]] = {}
    for i, layer in enumerate(layers):
        for node in layer._inbound_nodes:
            for t in node.input_tensors:
                src = t._keras_history.operation.name
                last_use[src] = max(last_use.get(src, -1), i)
                consumers.setdefault(src, []).append(layer)
    conv_types = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "ZeroPadding2D")
    points = []
    for i, layer in enumerate(layers[1:-1], start=1):
        live = [n for n, j in last_use.items() if index[n] <= i < j]
        if live == [layer.name] and consumers.get(layer.name) and all(
                type(c).__name__ in conv_types for c in consumers[layer.name]):
            points.append(i)
    def channels(i: int) -> int:
        return int(layers[i].output.shape[-1])
    # block boundaries, not the wide activations inside a block
    points = [i for i in points if channels(i) <= 2 * min(
        channels(j) for j in points if abs(j - i) <= 15)]
    picked: list[str] = []
    for depth in CUT_DEPTHS:
        if not points:
            break
        i = min(points, key=lambda p: abs(p - depth * len(layers)))
        if layers[i].name not in picked:
            picked.append(layers[i].name)
    return picked


@dataclass
class CutModels:
    """``bottom``: image -> cut activations (frozen); ``top``: cut activations ->
    probabilities, sharing the full model's layers (BatchNorm frozen)."""

    cut: str
    bottom: Any
    top: Any
    pooled: Any                   # cut activations -> pooled features (frozen part above)
    trainable_layers: int


def split_at(model: Any, cut: str) -> CutModels:
    import keras

    backbones = backbones_of(model)
    if len(backbones) != 1:
        raise ConfigError("cut fine-tuning needs a single backbone (not an ensemble)")
    backbone = backbones[0]
    try:
        cut_out = backbone.get_layer(cut).output
    except ValueError:
        raise ConfigError(f"the backbone has no layer {cut!r} to cut at") from None
    pos = model.layers.index(backbone)
    x = inputs = keras.Input(tuple(model.inputs[0].shape[1:]), dtype="float32",
                             name=model.inputs[0].name)
    for layer in model.layers[1:pos]:              # the normalisation layers
        x = layer(x)
    lower = keras.Model(backbone.inputs, cut_out, name="edgeclf_cut_lower")
    bottom = keras.Model(inputs, lower(x), name="edgeclf_bottom")
    upper = keras.Model(cut_out, backbone.output, name="edgeclf_cut_upper")
    count = 0
    for layer in upper.layers:
        trainable = not isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = trainable
        count += int(trainable and bool(layer.weights))
    cut_in = keras.Input(tuple(cut_out.shape[1:]), dtype="float32", name="cut")
    y = upper(cut_in)
    after = model.layers[model.layers.index(model.get_layer(FEATURES)):]
    pooled = None
    for layer in after:
        y = layer(y)
        if layer.name == FEATURES:
            pooled = keras.Model(cut_in, y, name="edgeclf_cut_pooled")
        if layer.name == OUTPUT_NAME:
            break
    top = keras.Model(cut_in, y, name="edgeclf_top")
    return CutModels(cut=cut, bottom=bottom, top=top, pooled=pooled, trainable_layers=count)


def cut_key(features_key: str, cut: str, views: int, aug: AugmentConfig, seed: int) -> str:
    text = json.dumps([CUT_FORMAT, features_key, cut, views, aug.__dict__, seed], default=str,
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass
class CutCache:
    """``train``: (n_train, views, h, w, c) float16 (view 0 clean, 1 mirrored, the rest
    augmented); ``val``/``test``: (n, h, w, c) float16 clean views."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    computed: bool
    seconds: float
    engine: dict | None = None     # the engine that computed it and its check vs Keras


def build_cut_cache(run: Callable[[np.ndarray], np.ndarray], cache: DecodeCache,
                    rows: dict[str, np.ndarray], key: str, *, views: int,
                    augment: AugmentConfig, mirror: bool, batch_size: int, seed: int,
                    workers: int | None = None,
                    progress: Callable[[int, int], None] | None = None,
                    engine_record: Callable[[], dict | None] | None = None) -> CutCache:
    """The cut activations (view 0 clean; view 1 mirrored when ``mirror``; the others
    augmented), from the cache folder when complete, else computed and stored
    atomically (a folder renamed into place when every file is written: a run killed
    half-way leaves nothing that a later run would use)."""
    folder = cache_root() / "cuts" / key
    if (folder / "done.json").is_file():
        meta = read_json(folder / "done.json")
        if all(meta.get(f"rows_{s}") == rows[s].tolist() for s in rows):
            log.info("cut cache hit: %s (nothing computed)", folder)
            return CutCache(**{s: np.load(folder / f"{s}.npy", mmap_mode="r") for s in rows},
                            computed=False, seconds=0.0, engine=meta.get("engine"))
    t0 = time.perf_counter()
    total = len(rows["train"]) * views + len(rows["val"]) + len(rows["test"])
    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        if progress:
            progress(done[0], total)

    out: dict[str, np.ndarray] = {}
    per_view = []
    for v in range(views):
        flip = mirror and v == 1
        aug = augment if v and not flip and augment.enabled else None
        per_view.append(_activations(run, cache, rows["train"], batch_size=batch_size,
                                     augment=aug, flip=flip, epoch=v, seed=seed,
                                     workers=workers, tick=tick))
    out["train"] = np.stack(per_view, axis=1)
    for s in ("val", "test"):
        out[s] = _activations(run, cache, rows[s], batch_size=batch_size, augment=None,
                              flip=False, epoch=0, seed=seed, workers=workers, tick=tick,
                              shape=per_view[0].shape[1:])
    with atomic_path(folder, is_dir=True) as tmp:
        tmp.mkdir(parents=True)
        for s, array in out.items():
            np.save(tmp / f"{s}.npy", array)
        engine = engine_record() if engine_record else None
        write_json(tmp / "done.json", {**{f"rows_{s}": rows[s].tolist() for s in rows},
                                       "engine": engine})
    seconds = time.perf_counter() - t0
    log.info("cut cache: %d activations in %.1fs (%.0f img/s) in %s", total, seconds,
             total / seconds if seconds else 0.0, folder)
    return CutCache(**out, computed=True, seconds=seconds, engine=engine)


def _activations(run: Callable, cache: DecodeCache, rows: np.ndarray, *, batch_size: int,
                 augment: AugmentConfig | None, flip: bool, epoch: int, seed: int,
                 workers: int | None, tick: Callable[[int], None],
                 shape: tuple | None = None) -> np.ndarray:
    if not len(rows):
        return np.zeros((0, *(shape or ())), np.float16)
    loader = BatchLoader(cache.images, rows, np.zeros(len(rows), np.int32),
                         batch_size=batch_size, pad=True, augment=augment, workers=workers,
                         seed=seed)
    parts = []
    try:
        for batch in loader.epoch(epoch):
            x = np.ascontiguousarray(batch.x[:, :, ::-1]) if flip else batch.x
            parts.append(np.asarray(run(x))[:batch.n].astype(np.float16))
            tick(batch.n)
    finally:
        loader.close()
    return np.concatenate(parts)


class ViewLoader:
    """Batches of cached cut activations with the :class:`BatchLoader` interface the epoch
    loop uses. Training: every image once per epoch, in one of its views, both drawn
    from (seed, epoch); evaluation (``views`` None): the clean activations, padded."""

    def __init__(self, acts: np.ndarray, labels: np.ndarray, *, batch_size: int,
                 train: bool, seed: int = 0) -> None:
        self.acts, self.labels = acts, np.asarray(labels, np.int32)
        self.batch_size, self.train, self.seed = int(batch_size), train, int(seed)
        self.stats = LoaderStats()

    def __len__(self) -> int:
        n = len(self.labels)
        if self.train:
            return max(1, n // self.batch_size) if n else 0
        return -(-n // self.batch_size)

    def epoch(self, epoch: int = 0) -> Iterator[Batch]:
        n, bs = len(self.labels), self.batch_size
        rng = np.random.default_rng([self.seed, epoch, 11])
        order = rng.permutation(n) if self.train else np.arange(n)
        view = rng.integers(0, self.acts.shape[1], n) if self.train else None
        for b in range(len(self)):
            idx = order[b * bs:(b + 1) * bs]
            if self.train:
                x = np.asarray(self.acts[np.sort(idx)][np.argsort(np.argsort(idx)),
                                                       view[idx]], np.float32)
            else:
                x = np.asarray(self.acts[idx[0]:idx[-1] + 1], np.float32)
            y, k = self.labels[idx], len(idx)
            if k < bs and not self.train:
                x = np.concatenate([x, np.repeat(x[-1:], bs - k, axis=0)])
                y = np.concatenate([y, np.repeat(y[-1:], bs - k)])
            yield Batch(x=x, y=y, n=k)

    def close(self) -> None:
        """Nothing to release (the interface of :class:`BatchLoader`)."""
