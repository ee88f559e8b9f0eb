"""Preparing a training run: backend, devices, data, split, loaders and the run files."""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

import edgeclf
from edgeclf.data import (CacheError, DataReport, DecodeCache, Split, check_dataset,
                          load_or_build, make_split, parse_fractions, require_trainable,
                          resolve_budget, scan_dataset)
from edgeclf.data.loader import BatchLoader
from edgeclf.errors import ConfigError, DataError, RunError
from edgeclf.fsutil import read_json, write_json, write_text
from edgeclf.machine import distribution_version
from edgeclf.run import RunPaths
from edgeclf.runtime.contract import Contract

from . import cluster
from .config import IMBALANCE_RATIO, TrainConfig

log = logging.getLogger(__name__)


def select_backend(name: str) -> None:
    """Make Keras use ``name``; refuse if Keras is already loaded with another backend."""
    if "keras" in sys.modules:
        import keras

        current = keras.backend.backend()
        if current != name:
            raise ConfigError(f"--backend {name} requested, but Keras is already running on "
                              f"{current} in this process; set KERAS_BACKEND={name} before "
                              "starting Python")
        return
    os.environ["KERAS_BACKEND"] = name


def setup_devices(batch_size: int) -> tuple[int, int]:
    """Data parallelism over every device (JAX), those of every process of a multi-process
    run included; returns (devices, batch size). ``batch_size`` is the global batch: each
    process feeds its share of it."""
    import keras

    devices = keras.distribution.list_devices()
    n = len(devices)
    if n <= 1 or keras.backend.backend() != "jax":
        return max(n, 1), batch_size
    if batch_size % n:
        raise ConfigError(f"--batch-size {batch_size} must be a multiple of the {n} "
                          "devices (of every process) for data parallelism")
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    log.info("data parallel over %d devices (%s)", n, ", ".join(str(d) for d in devices))
    return n, batch_size


@dataclass
class RunData:
    root: Path
    fingerprint: str
    cache: DecodeCache
    report: DataReport
    split: Split
    rows: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]

    @property
    def classes(self) -> list[str]:
        return self.split.classes


def prepare(cfg: TrainConfig, contract: Contract, split_file: Path | None,
            progress: Callable[[int, int], None] | None = None) -> RunData:
    """Scan + decode cache + report + split (read from ``split_file`` when resuming)."""
    if not cfg.data_dir:
        raise ConfigError("no dataset folder given (DATA_DIR or data_dir in the config)")
    dataset = scan_dataset(cfg.data_dir, workers=cfg.workers)
    cache = open_cache(cfg, dataset, contract, progress)
    report = check_dataset(dataset, cache)
    require_trainable(report)
    if split_file is not None and split_file.is_file():
        split = Split.read(split_file)
    else:
        usable_classes = report.usable_classes
        ok = dict(zip(cache.relpaths, cache.ok.tolist()))
        relpaths = [it.relpath for it in dataset.items if ok.get(it.relpath)
                    and it.relpath.split("/", 1)[0] in usable_classes]
        split = make_split(dataset.root, usable_classes, relpaths,
                           fractions=parse_fractions(cfg.split), seed=cfg.seed,
                           hashes={it.relpath: it.sha256 for it in dataset.items})
    index = cache.index_of()
    missing = [p for p in split.train + split.val + split.test if p not in index]
    if missing:
        raise DataError(f"{len(missing)} file(s) of the run's split are no longer in "
                        f"{dataset.root} (e.g. {missing[0]})")
    rows = {s: np.array([index[p] for p in split.paths(s)], np.int64)
            for s in ("train", "val", "test")}
    labels = {s: np.array(split.labels(s), np.int32) for s in ("train", "val", "test")}
    if not len(rows["train"]):
        raise DataError(f"{dataset.root}: the training split is empty")
    return RunData(root=dataset.root, fingerprint=dataset.fingerprint, cache=cache,
                   report=report, split=split, rows=rows, labels=labels)


def prepare_run(cfg: TrainConfig, contract: Contract, paths: RunPaths,
                progress: Callable[[int, int], None] | None = None) -> RunData:
    """:func:`prepare` for this process. Across processes, process 0 goes first and writes
    ``split.json``; the others then decode (reusing a cache on a shared disk) and take
    the split it wrote, so every process trains on the same rows."""
    group = cfg.process_group()
    if not group.multi:
        return prepare(cfg, contract, paths.split if cfg.resume else None, progress)

    def turn() -> RunData:
        if group.main:
            data = prepare(cfg, contract, paths.split if cfg.resume else None, progress)
            data.split.write(paths.split)
            return data
        if not paths.split.is_file():
            raise RunError(f"{group.describe()} cannot see {paths.split}, written by process "
                           "0: --out must be a folder every process sees (a filesystem "
                           "shared by every host)")
        return prepare(cfg, contract, paths.split, progress)

    return cluster.in_turn("prepare", turn)


def open_cache(cfg: TrainConfig, dataset: Any, contract: Contract,
               progress: Callable[[int, int], None] | None) -> DecodeCache:
    """The decode cache, or streamed images when it is over budget or cannot be written
    (a full or read-only disk: the error is logged and training streams)."""
    budget = resolve_budget(cfg.cache_budget)
    try:
        cache = load_or_build(dataset, contract, workers=cfg.workers, progress=progress,
                              budget=budget)
    except CacheError as e:
        log.warning("%s; training streams the images instead", e)
        cache = load_or_build(dataset, contract, workers=cfg.workers, progress=progress,
                              budget=0)
    if cache.streaming:
        n, workers = int(cache.ok.sum()), cfg.workers or os.cpu_count() or 1
        cost = (f"about {n / cache.decode_rate / workers:.0f}s of decoding per epoch on "
                f"{workers} worker(s)" if cache.decode_rate else "a decode per image per epoch")
        log.warning("streaming %d images (%s): %s", n,
                    cache.plan.reason if cache.plan else "no cache", cost)
    return cache


def make_loaders(cfg: TrainConfig, data: RunData, batch_size: int,
                 augment: bool) -> tuple[BatchLoader, BatchLoader, BatchLoader]:
    """Training batches (each process of a multi-process run reads its slice of every
    global batch); val and test in full on every process, so each computes the same
    metrics and early stopping agrees without a word between them."""
    images = data.cache.images
    group = cfg.process_group()
    train = BatchLoader(images, data.rows["train"], data.labels["train"],
                        batch_size=batch_size, shuffle=True, drop_remainder=True,
                        augment=cfg.augmentation() if augment else None,
                        workers=cfg.workers, seed=cfg.seed, max_batches=cfg.steps_per_epoch,
                        shard=(group.process_id, group.num_processes))
    val = BatchLoader(images, data.rows["val"], data.labels["val"], batch_size=batch_size,
                      pad=True, workers=cfg.workers)
    test = BatchLoader(images, data.rows["test"], data.labels["test"],
                       batch_size=batch_size, pad=True, workers=cfg.workers)
    return train, val, test


def class_weights(cfg: TrainConfig, data: RunData) -> np.ndarray | None:
    """``balanced``: n / (C * n_c) per class, so every class weighs the same in the loss;
    ``auto``: balanced when the largest training class has :data:`IMBALANCE_RATIO` times
    the images of the smallest (logged), none otherwise."""
    if cfg.class_weights == "none":
        return None
    counts = np.bincount(data.labels["train"], minlength=len(data.classes)).astype(np.float64)
    if cfg.class_weights == "auto":
        ratio = counts.max() / max(counts.min(), 1)
        if ratio < IMBALANCE_RATIO:
            return None
        log.warning("classes are imbalanced (largest/smallest training class %.1fx >= %.1fx):"
                    " balanced class weights (--class-weights none to turn off)", ratio,
                    IMBALANCE_RATIO)
    weights = len(data.labels["train"]) / (len(counts) * np.maximum(counts, 1))
    return weights.astype(np.float32)


def versions() -> dict:
    out = {"python": platform.python_version(), "edgeclf": edgeclf.__version__}
    for dist in ("keras", "tensorflow", "tensorflow-cpu", "jax", "jaxlib", "numpy", "pillow",
                 "h5py"):
        if (version := distribution_version(dist)):
            out[dist] = version
    return out


def write_run_files(paths: RunPaths, cfg: TrainConfig, data: RunData,
                    contract: Contract, extra: dict | None = None) -> None:
    run = {"name": cfg.name, "edgeclf_version": edgeclf.__version__,
           "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "backend": cfg.backend, "backbone": cfg.backbone,
           "image_size": cfg.image_size, "preprocessing": contract.to_dict(),
           "classes": list(data.classes),
           "dataset": {"root": str(data.root), "fingerprint": data.fingerprint},
           "config": cfg.to_dict(), "versions": versions(), **(extra or {})}
    write_json(paths.run_json, run)
    write_text(paths.labels, "".join(f"{c}\n" for c in data.classes))
    data.split.write(paths.split)
    write_json(paths.data_report, data.report.to_dict())


def resume_config(paths: RunPaths, cfg: TrainConfig) -> TrainConfig:
    """The config a run was started with (``run.json``), to continue it unchanged."""
    if not paths.state.is_file() or not paths.last.is_file():
        raise RunError(f"cannot resume {paths.root}: no completed epoch to resume from "
                       "(checkpoints/state.json and last.keras are missing)")
    saved = read_json(paths.run_json).get("config", {})
    resumed = TrainConfig.from_dict(saved)
    defaults = TrainConfig(data_dir=cfg.data_dir, out=cfg.out, name=cfg.name,
                           backend=cfg.backend).resolve().to_dict()
    changed = [k for k, v in cfg.to_dict().items() if k in saved and saved[k] != v
               and v != defaults.get(k) and k not in ("workers", "data_dir", "cache_budget")]
    if changed:
        log.warning("--resume continues %s with its saved config; ignoring changed "
                    "option(s): %s", paths.root, ", ".join(changed))
    return dataclasses.replace(resumed, resume=True, workers=cfg.workers,
                               cache_budget=cfg.cache_budget,
                               data_dir=cfg.data_dir or resumed.data_dir,
                               num_processes=cfg.num_processes, process_id=cfg.process_id,
                               coordinator=cfg.coordinator)
