"""``--strategy linear-probe``: the frozen backbone's pooled features, computed once and
cached like the decode cache, and the head trained on them in seconds.

The cache key holds everything the features depend on: the decode cache (dataset
fingerprint + preprocessing contract), the backbone(s), the weights and the Keras version.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any, Callable

import numpy as np

from edgeclf.data import DecodeCache, cache_root
from edgeclf.data.loader import BatchLoader
from edgeclf.fsutil import atomic_path, read_json, write_json
from edgeclf.metrics import selection_score

log = logging.getLogger(__name__)

#: Epochs without a better validation accuracy before the probe stops (epochs take ms).
PROBE_PATIENCE = 15
#: Batch size of the probe on cached features.
PROBE_BATCH = 64


def features_key(cache: DecodeCache, members: list[str], weights_id: str,
                 mixed_precision: str | None, *extra: str) -> str:
    """``extra``: what else the values depend on (the engine, mirroring, a cut layer)."""
    import keras

    text = json.dumps([cache.path.name, members, weights_id, keras.__version__,
                       keras.backend.backend(), mixed_precision or "float32", *extra])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def cached_features(run: Any, cache: DecodeCache, rows: np.ndarray, key: str, *,
                    batch_size: int, workers: int | None = None, flip: bool = False,
                    progress: Callable[[int, int], None] | None = None,
                    engine_record: Callable[[], dict | None] | None = None) -> np.ndarray:
    """Pooled features of ``cache.images[rows]`` (float32 (n, D)), from the feature cache
    when present, else computed (fixed-shape batches) and stored atomically.

    ``run``: ``batch -> features`` (an :class:`~.engine.Engine`'s ``run``, or a Keras model
    whose ``predict_on_batch`` is used); ``flip``: features of the horizontally mirrored
    images (``key`` must say so); ``engine_record``: what computed them (stored beside
    them, read back by :func:`stored_engine`)."""
    if hasattr(run, "predict_on_batch"):
        run = run.predict_on_batch
    folder = cache_root() / "features" / key
    path = folder / "features.npy"
    index_path = folder / "rows.npy"
    if path.is_file() and index_path.is_file():
        stored_rows = np.load(index_path)
        pos = {int(r): i for i, r in enumerate(stored_rows)}
        if all(int(r) in pos for r in rows):
            feats = np.load(path, mmap_mode="r")
            log.info("feature cache hit: %s (nothing computed)", folder)
            return np.asarray(feats[[pos[int(r)] for r in rows]], dtype=np.float32)
    t0 = time.perf_counter()
    loader = BatchLoader(cache.images, rows, np.zeros(len(rows), np.int32),
                         batch_size=batch_size, pad=True, workers=workers)
    feats = []
    done = 0
    for batch in loader.epoch(0):
        x = batch.x[:, :, ::-1] if flip else batch.x
        out = np.asarray(run(np.ascontiguousarray(x)), dtype=np.float32)[:batch.n]
        feats.append(out)
        done += batch.n
        if progress:
            progress(done, len(rows))
    array = np.concatenate(feats)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(index_path) as tmp:
        np.save(tmp, np.asarray(rows, np.int64))
    if engine_record is not None:
        write_json(folder / "engine.json", engine_record())
    with atomic_path(path) as tmp:
        np.save(tmp, array)
    seconds = time.perf_counter() - t0
    log.info("computed %d features in %.1fs (%.0f img/s); cached in %s", len(rows), seconds,
             len(rows) / seconds if seconds else 0.0, folder)
    return array


def stored_engine(key: str) -> dict | None:
    """The engine record of the features cached under ``key`` (None if not recorded)."""
    path = cache_root() / "features" / key / "engine.json"
    return read_json(path) if path.is_file() else None


def train_probe(head_model: Any, train: tuple[np.ndarray, np.ndarray],
                val: tuple[np.ndarray, np.ndarray], *, epochs: int, num_classes: int,
                sample_weight: np.ndarray | None, patience: int, seed: int,
                on_epoch: Callable[[int, dict], None] | None = None) -> dict:
    """Train the (compiled) head on features with mini-batches; keep the weights of the
    best validation epoch (:func:`edgeclf.metrics.selection_score`: balanced when
    ``sample_weight`` is given). Returns {"best_epoch", "best_val" (that score), "rows"}."""
    from .loop import one_hot

    x, y = train
    xv, yv = val
    y1 = one_hot(y, num_classes)
    rng = np.random.default_rng(seed)
    best = {"best_epoch": 0, "best_val": -1.0, "rows": []}
    best_weights = head_model.get_weights()
    bad = 0
    for epoch in range(epochs):
        t0 = time.perf_counter()
        order = rng.permutation(len(x))
        loss = acc = 0.0
        for s in range(0, len(order), PROBE_BATCH):
            idx = order[s:s + PROBE_BATCH]
            sw = sample_weight[y[idx]] if sample_weight is not None else None
            logs = head_model.train_on_batch(x[idx], y1[idx], sample_weight=sw,
                                             return_dict=True)
            loss += float(logs["loss"]) * len(idx)
            acc += float(logs.get("accuracy", 0.0)) * len(idx)
        probs = np.asarray(head_model.predict_on_batch(xv), np.float32) if len(yv) else None
        if probs is not None:
            pred = probs.argmax(1)
            val_acc = float((pred == yv).mean())
            score = selection_score(pred, yv, balanced=sample_weight is not None)
        else:                                   # no val split: the training accuracy
            val_acc = score = acc / len(x)
        val_loss = _xent(probs, yv) if probs is not None else float("nan")
        row = {"loss": loss / len(x), "accuracy": acc / len(x), "val_loss": val_loss,
               "val_accuracy": val_acc, "seconds": time.perf_counter() - t0,
               "images": len(x)}
        best["rows"].append(row)
        if score > best["best_val"]:
            best.update(best_epoch=epoch + 1, best_val=score)
            best_weights = head_model.get_weights()
            bad = 0
        else:
            bad += 1
        if on_epoch:
            on_epoch(epoch + 1, row)
        if patience and bad >= patience:
            log.info("linear probe: stopped after %d epochs (best %d)", epoch + 1,
                     best["best_epoch"])
            break
    head_model.set_weights(best_weights)
    return best


def _xent(probs: np.ndarray, labels: np.ndarray) -> float:
    from edgeclf.metrics import cross_entropy

    return cross_entropy(probs, labels)
